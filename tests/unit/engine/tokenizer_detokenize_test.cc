#include "engine/tokenizer_detokenize.h"

#include <gtest/gtest.h>

namespace hangar::engine {
namespace {

std::string cleaned(std::string s) {
  clean_up_tokenization_spaces(&s);
  return s;
}

TEST(CleanUpSpacesTest, DropsTheSpaceBeforeSentencePunctuation) {
  EXPECT_EQ(cleaned("Hello , world ! Really ? Yes ."), "Hello, world! Really? Yes.");
  EXPECT_EQ(cleaned("a  ."), "a .");  // only one space goes
  EXPECT_EQ(cleaned(" ."), ".");
}

TEST(CleanUpSpacesTest, LoneApostropheBetweenSpacesLosesBothSpaces) {
  EXPECT_EQ(cleaned("rock ' n"), "rock'n");
}

TEST(CleanUpSpacesTest, DropsTheSpaceBeforeSomeContractionsOnly) {
  EXPECT_EQ(cleaned("he 's I 'm we 're you 've"), "he's I'm we're you've");
  EXPECT_EQ(cleaned("don 't I 'd we 'll"), "don 't I 'd we 'll");
}

TEST(CleanUpSpacesTest, LeavesOtherTextAndEdgeCasesAlone) {
  EXPECT_EQ(cleaned(""), "");
  EXPECT_EQ(cleaned("."), ".");
  EXPECT_EQ(cleaned("a 'b"), "a 'b");
  EXPECT_EQ(cleaned("end '"), "end '");
  EXPECT_EQ(cleaned("x 's"), "x's");
  EXPECT_EQ(cleaned("x 'r"), "x 'r");
}

TEST(Gpt2ByteDecodeTest, MapsCodePointsBackToBytes) {
  EXPECT_EQ(gpt2_byte_decode("\xC4\xA0"
                             "Hello\xC4\x8A"),
            " Hello\n");
}

TEST(Gpt2ByteDecodeTest, CodePointOutsideTheTableIsMarkedAsLlamaCppDoes) {
  // "中" (E4 B8 AD) is not a byte-level piece.
  EXPECT_EQ(gpt2_byte_decode("\xE4\xB8\xAD"), "[UNK_BYTE_0xe4b8ad\xE4\xB8\xAD]");
}

}  // namespace
}  // namespace hangar::engine
