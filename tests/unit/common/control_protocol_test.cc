// The worker ↔ router control protocol (design §6): every event survives encode → decode, and
// a malformed line is an error naming what is wrong, never a crash or a wrong event.
#include "common/control_protocol.h"

#include <gtest/gtest.h>

namespace hangar::control {
namespace {

TEST(ControlProtocol, EveryEventRoundTrips) {
  auto listening = decode(encode(Listening{8123, ""}));
  ASSERT_TRUE(listening.ok());
  EXPECT_EQ(std::get<Listening>(*listening).port, 8123);
  auto unix_socket = decode(encode(Listening{0, "/run/hangar/w.sock"}));
  ASSERT_TRUE(unix_socket.ok());
  EXPECT_EQ(std::get<Listening>(*unix_socket).unix_path, "/run/hangar/w.sock");
  auto loading = decode(encode(Loading{0.25}));
  ASSERT_TRUE(loading.ok());
  EXPECT_DOUBLE_EQ(std::get<Loading>(*loading).progress, 0.25);
  Ready r;
  r.model_json = R"({"id":"m","n_ctx":512})";
  r.memory = {{"CPU", 123456789ull}, {"CUDA0", 1ull << 33}};
  auto ready = decode(encode(r));
  ASSERT_TRUE(ready.ok());
  EXPECT_EQ(std::get<Ready>(*ready).memory, r.memory);
  EXPECT_EQ(std::get<Ready>(*ready).model_json, r.model_json);
  auto error = decode(encode(Error{"out of memory \"here\""}));
  ASSERT_TRUE(error.ok());
  EXPECT_EQ(std::get<Error>(*error).message, "out of memory \"here\"");
}

TEST(ControlProtocol, TheWireFormatIsDesignSection6) {
  EXPECT_EQ(encode(Listening{80, ""}), R"({"event":"listening","port":80})");
  EXPECT_EQ(encode(Loading{0.5}), R"({"event":"loading","progress":0.5})");
  EXPECT_EQ(encode(Error{"x"}), R"({"event":"error","message":"x"})");
}

TEST(ControlProtocol, MalformedLinesAreErrorsThatSayWhy) {
  for (const char* line :
       {"", "not json", "[1,2]", R"({"no":"event"})", R"({"event":7})", R"({"event":"dance"})",
        R"({"event":"listening"})", R"({"event":"listening","port":0})",
        R"({"event":"listening","port":70000})", R"({"event":"listening","port":"80"})",
        R"({"event":"loading","progress":"half"})", R"({"event":"loading","progress":1.5})",
        R"({"event":"ready","memory":[1]})", R"({"event":"ready","memory":{"CPU":-5}})"}) {
    auto e = decode(line);
    EXPECT_FALSE(e.ok()) << line;
    if (!e.ok()) {
      EXPECT_NE(e.status().message().find("control"), std::string::npos) << line;
    }
  }
}

}  // namespace
}  // namespace hangar::control
