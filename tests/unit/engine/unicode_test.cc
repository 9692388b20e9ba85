#include "engine/unicode.h"

#include <gtest/gtest.h>

#include <set>

namespace hangar::engine {
namespace {

TEST(UnicodeTest, DecodesWellFormedUtf8) {
  EXPECT_EQ(decode_utf8("a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x81"),
            (std::vector<uint32_t>{'a', 0xE9, 0x20AC, 0x1F601}));
}

TEST(UnicodeTest, MalformedBytesBecomeReplacementCharactersOneByteAtATime) {
  // A stray continuation byte, a truncated 2-byte sequence, a lead byte 0xFF.
  EXPECT_EQ(decode_utf8("\x80"), (std::vector<uint32_t>{kReplacementChar}));
  EXPECT_EQ(decode_utf8("\xC3"), (std::vector<uint32_t>{kReplacementChar}));
  EXPECT_EQ(decode_utf8("\xC3"
                        "a"),
            (std::vector<uint32_t>{kReplacementChar, 'a'}));
  EXPECT_EQ(decode_utf8("\xE2\x82"), (std::vector<uint32_t>{kReplacementChar, kReplacementChar}));
  EXPECT_EQ(decode_utf8("\xFF"
                        "b"),
            (std::vector<uint32_t>{kReplacementChar, 'b'}));
}

TEST(UnicodeTest, LenientDecodingKeepsOverlongsAndSurrogatesLikeLlamaCpp) {
  EXPECT_EQ(decode_utf8("\xC0\x80"), (std::vector<uint32_t>{0}));
  EXPECT_EQ(decode_utf8("\xED\xA0\x80"), (std::vector<uint32_t>{0xD800}));
  EXPECT_FALSE(is_valid_utf8("\xC0\x80"));
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));
  EXPECT_TRUE(is_valid_utf8("a\xC3\xA9\xF0\x9F\x98\x81"));
}

TEST(UnicodeTest, EncodeIsTheInverseOfDecodeForScalarValues) {
  for (uint32_t cpt : {0u, 0x41u, 0x7Fu, 0x80u, 0x7FFu, 0x800u, 0xFFFFu, 0x10000u, 0x10FFFFu}) {
    const std::string s = encode_utf8(cpt);
    EXPECT_EQ(decode_utf8(s), std::vector<uint32_t>{cpt}) << cpt;
    EXPECT_TRUE(is_valid_utf8(s)) << cpt;
  }
}

TEST(UnicodeTest, SequenceLengthComesFromTheLeadByte) {
  EXPECT_EQ(utf8_sequence_length('a'), 1u);
  EXPECT_EQ(utf8_sequence_length(0x80), 1u);  // continuation bytes stand alone
  EXPECT_EQ(utf8_sequence_length(0xC3), 2u);
  EXPECT_EQ(utf8_sequence_length(0xE2), 3u);
  EXPECT_EQ(utf8_sequence_length(0xF0), 4u);
}

TEST(UnicodeTest, Gpt2ByteTableIsABijectionWithPrintableCodePoints) {
  std::set<uint32_t> seen;
  for (int b = 0; b < 256; ++b) {
    const uint32_t cpt = byte_to_gpt2_cpt(static_cast<uint8_t>(b));
    EXPECT_TRUE(seen.insert(cpt).second);
    EXPECT_EQ(gpt2_cpt_to_byte(cpt), b);
    EXPECT_EQ(byte_to_gpt2_piece(static_cast<uint8_t>(b)), encode_utf8(cpt));
  }
  EXPECT_EQ(byte_to_gpt2_cpt(' '), 0x120u);   // "Ġ"
  EXPECT_EQ(byte_to_gpt2_cpt('\n'), 0x10Au);  // "Ċ"
  EXPECT_EQ(byte_to_gpt2_cpt('A'), static_cast<uint32_t>('A'));
  EXPECT_EQ(gpt2_cpt_to_byte(0x4E00), -1);
  EXPECT_EQ(gpt2_byte_encode(" a"),
            "\xC4\xA0"
            "a");
}

}  // namespace
}  // namespace hangar::engine
