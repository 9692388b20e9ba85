// Registry and presets: sources, names, aliases, precedence, start-up errors (design §3.5).
#include "router/registry.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "router/preset.h"
#include "support/test_support.h"

namespace hangar::router {
namespace {

namespace fs = std::filesystem;

void touch(const fs::path& p) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << "GGUF";
}

std::string write(const fs::path& p, const std::string& text) {
  std::ofstream(p) << text;
  return p.string();
}

TEST(PresetTest, LongShortAndEnvKeysAreEquivalent) {
  for (const char* key : {"c", "ctx-size", "LLAMA_ARG_CTX_SIZE"}) {
    auto p = parse_preset(std::string("version = 1\n[m]\nmodel = /x.gguf\n") + key + " = 512\n",
                          "f.ini");
    ASSERT_TRUE(p.ok()) << p.status().message();
    ASSERT_EQ(p->sections.size(), 1u);
    const PresetEntry* e = p->sections[0].find("ctx-size");
    ASSERT_NE(e, nullptr) << key;
    EXPECT_EQ(e->value, "512");
  }
}

TEST(PresetTest, UnknownKeyNamesFileLineAndKey) {
  auto p = parse_preset("version = 1\n[*]\nc = 1\n; comment\n[m]\nbogus-key = 3\n", "my.ini");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("my.ini"), std::string::npos);
  EXPECT_NE(p.status().message().find("line 6"), std::string::npos);
  EXPECT_NE(p.status().message().find("bogus-key"), std::string::npos);
}

TEST(PresetTest, DuplicateSectionAndMalformedLinesAreErrors) {
  EXPECT_FALSE(parse_preset("[a]\nmodel=x\n[a]\nmodel=y\n", "f").ok());
  EXPECT_FALSE(parse_preset("[a\n", "f").ok());
  EXPECT_FALSE(parse_preset("[a]\njust words\n", "f").ok());
  EXPECT_FALSE(parse_preset("version = 2\n", "f").ok());
  EXPECT_FALSE(parse_preset("[a]\njinja = maybe\n", "f").ok());
}

TEST(PresetTest, CommentsAndBooleansParse) {
  auto p = parse_preset("# top\nversion = 1\n\n[a] \nmodel = /m.gguf ; trailing\njinja = on\n"
                        "no-mmap = true\n",
                        "f");
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->sections[0].find("model")->value, "/m.gguf");
  EXPECT_EQ(p->sections[0].find("mmap")->value, "false");
}

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override { dir = testing::make_temp_dir("hangar-registry"); }
  void TearDown() override { fs::remove_all(dir); }
  fs::path dir;
};

TEST_F(RegistryTest, ModelsDirFindsFilesShardsAndProjectors) {
  touch(dir / "models/alpha.gguf");
  touch(dir / "models/mmproj-top.gguf");  // top-level projector: not a model
  touch(dir / "models/notes.txt");
  touch(dir / "models/big/big-00001-of-00002.gguf");
  touch(dir / "models/big/big-00002-of-00002.gguf");
  touch(dir / "models/vision/vision-Q8_0.gguf");
  touch(dir / "models/vision/mmproj-F16.gguf");
  touch(dir / "models/empty/readme.md");
  RegistrySources src;
  src.models_dir = (dir / "models").string();
  auto r = Registry::scan(src);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->models().size(), 3u);
  EXPECT_EQ(r->models()[0].id, "alpha");
  EXPECT_EQ(r->models()[1].id, "big");
  EXPECT_EQ(r->models()[1].path, (dir / "models/big/big-00001-of-00002.gguf").string());
  EXPECT_EQ(r->models()[2].id, "vision");
  EXPECT_EQ(r->models()[2].mmproj, (dir / "models/vision/mmproj-F16.gguf").string());
  EXPECT_EQ(r->models()[0].source, "models-dir");
}

TEST_F(RegistryTest, PresetPrecedenceCliOverSectionOverDefaults) {
  touch(dir / "models/alpha.gguf");
  std::string ini = write(dir / "p.ini",
                          "version = 1\n[*]\nc = 100\nt = 2\nport = 9999\n"
                          "[alpha]\nc = 200\nalias = first, a1\npin = true\nttl = 30\n"
                          "stop-timeout = 3\nload-on-startup = 1\n"
                          "[beta]\nmodel = /somewhere/beta.gguf\njinja = true\n"
                          "memory = CPU:2048,CUDA0:100\n");
  RegistrySources src;
  src.models_dir = (dir / "models").string();
  src.preset_file = ini;
  const std::vector<std::string> cli_argv = {"-t", "8"};
  auto cli = parse_worker_cli_args(cli_argv);
  ASSERT_TRUE(cli.ok());
  src.cli_args = *cli;
  auto r = Registry::scan(src);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const ModelConfig* a = r->resolve("a1");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->id, "alpha");
  EXPECT_EQ(a->worker_args,
            (std::vector<std::string>{"--ctx-size", "200", "--threads", "8"}));
  EXPECT_TRUE(a->pin);
  EXPECT_EQ(a->ttl_s, 30);
  EXPECT_EQ(a->stop_timeout_s, 3);
  EXPECT_TRUE(a->load_on_startup);
  const ModelConfig* b = r->resolve("beta");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->path, "/somewhere/beta.gguf");
  EXPECT_EQ(b->source, "preset");
  EXPECT_EQ(b->worker_args,
            (std::vector<std::string>{"--ctx-size", "100", "--threads", "8", "--jinja"}));
  ASSERT_EQ(b->memory_mib.size(), 2u);
  EXPECT_EQ(b->memory_mib[1].first, "CUDA0");
  EXPECT_EQ(b->memory_mib[1].second, 100u);
}

TEST_F(RegistryTest, AliasCollisionNamesFileLineAndKey) {
  touch(dir / "models/alpha.gguf");
  touch(dir / "models/beta.gguf");
  std::string ini = write(dir / "p.ini", "version = 1\n[alpha]\nc = 1\nalias = beta\n");
  RegistrySources src;
  src.models_dir = (dir / "models").string();
  src.preset_file = ini;
  auto r = Registry::scan(src);
  ASSERT_FALSE(r.ok());
  const std::string m = r.status().message();
  EXPECT_NE(m.find("p.ini"), std::string::npos) << m;
  EXPECT_NE(m.find("line 4"), std::string::npos) << m;
  EXPECT_NE(m.find("alias"), std::string::npos) << m;
}

TEST_F(RegistryTest, ModelsDirNameCollisionIsAnError) {
  touch(dir / "models/alpha.gguf");
  touch(dir / "models/alpha/alpha-Q4.gguf");
  RegistrySources src;
  src.models_dir = (dir / "models").string();
  auto r = Registry::scan(src);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("alpha"), std::string::npos);
}

TEST_F(RegistryTest, SectionWithoutModelIsAnError) {
  std::string ini = write(dir / "p.ini", "version = 1\n[ghost]\nc = 1\n");
  RegistrySources src;
  src.preset_file = ini;
  auto r = Registry::scan(src);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("ghost"), std::string::npos);
  EXPECT_NE(r.status().message().find("line 2"), std::string::npos);
}

TEST_F(RegistryTest, BadPresetOnlyValueNamesTheKey) {
  std::string ini = write(dir / "p.ini", "[m]\nmodel = /x.gguf\nttl = soon\n");
  RegistrySources src;
  src.preset_file = ini;
  auto r = Registry::scan(src);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("ttl"), std::string::npos);
  EXPECT_NE(r.status().message().find("line 3"), std::string::npos);
}

TEST(WorkerCliArgsTest, UnknownOptionIsAnError) {
  const std::vector<std::string> unknown = {"--frobnicate", "1"};
  const std::vector<std::string> missing = {"-c"};
  const std::vector<std::string> good = {"--no-mmap", "-c=64"};
  EXPECT_FALSE(parse_worker_cli_args(unknown).ok());
  EXPECT_FALSE(parse_worker_cli_args(missing).ok());
  auto ok = parse_worker_cli_args(good);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ((*ok)[0].key, "mmap");
  EXPECT_EQ((*ok)[0].value, "false");
  EXPECT_EQ((*ok)[1].value, "64");
}

}  // namespace
}  // namespace hangar::router
