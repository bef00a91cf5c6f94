// The config-reading layer (core/yaml_config.hpp) and the enum name tables (core/enum_names.hpp): values and
// defaults read back exactly, and every error names the source, the dotted key and the line.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/enum_names.hpp"
#include "core/errors.hpp"
#include "tests/support/error_of.hpp"
#include "core/yaml_config.hpp"

namespace divprune {
namespace {

using ::testing::HasSubstr;

enum class Color { Red, Green, Blue };
constexpr auto kColorNames = enum_names<Color>(
    "color", {{Color::Red, "red"}, {Color::Green, "green"}, {Color::Blue, "blue"}, {Color::Red, "rouge"}});
static_assert(kColorNames.names_unique());
static_assert(kColorNames.name(Color::Green) == "green");
static_assert(*kColorNames.find("rouge") == Color::Red);

using testing_support::error_of;

const char* kText =
    "name: demo\n"
    "count: 12\n"
    "ratio: 0.25\n"
    "flag: yes\n"
    "nothing: ~\n"
    "levels: [0.1, 0.5]\n"
    "section:\n"
    "  inner: 7\n"
    "  list: [1, 2, 3]\n"
    "  color: blue\n"
    "paths: {rel: data/x.txt, abs: /abs/y, asset: \"${assets}/z\"}\n";

TEST(EnumNames, NamesAliasesAndUnknownNames) {
  EXPECT_EQ(kColorNames.name(Color::Red), "red");  // the first name, never the alias
  EXPECT_EQ(kColorNames.parse("rouge", "here"), Color::Red);
  EXPECT_EQ(kColorNames.parse("blue", ""), Color::Blue);
  EXPECT_EQ(kColorNames.known(), "red, green, blue");
  EXPECT_FALSE(kColorNames.find("Red").has_value());
  EXPECT_EQ(error_of([] { kColorNames.parse("pink", "cfg.yaml: paint (line 3)"); }),
            "cfg.yaml: paint (line 3): unknown color \"pink\" (known: red, green, blue)");
  EXPECT_EQ(error_of([] { kColorNames.parse("pink", ""); }), "unknown color \"pink\" (known: red, green, blue)");
}

TEST(ConfigNode, ReadsValuesAndDefaults) {
  const ConfigNode root = ConfigNode::parse(kText, "/cfg/run.yaml");
  EXPECT_EQ(root.where(), "/cfg/run.yaml");
  EXPECT_EQ(root.get<std::string>("name"), "demo");
  EXPECT_EQ(root.get<int64_t>("count"), 12);
  EXPECT_EQ(root.get<int>("count"), 12);
  EXPECT_EQ(root.get<uint64_t>("count"), 12u);
  EXPECT_EQ(root.get<double>("ratio"), 0.25);
  EXPECT_EQ(root.get<double>("count"), 12.0);
  EXPECT_TRUE(root.get<bool>("flag"));
  EXPECT_EQ(root.get<std::vector<double>>("levels"), (std::vector<double>{0.1, 0.5}));
  EXPECT_EQ(root["section"].get<std::vector<int64_t>>("list"), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(root["section"].get_enum("color", kColorNames, Color::Red), Color::Blue);
  EXPECT_EQ(root["section"]["inner"].key(), "section.inner");
  EXPECT_EQ(root["section"]["inner"].where(), "/cfg/run.yaml: section.inner (line 8)");
  EXPECT_EQ(root["section"]["list"][2].where(), "/cfg/run.yaml: section.list[2] (line 9)");
  // Defaults: absent keys, null values, keys of absent sections.
  EXPECT_EQ(root.get<int64_t>("missing", 5), 5);
  EXPECT_EQ(root.get<int64_t>("nothing", 6), 6);
  EXPECT_EQ(root["absent"].get<std::string>("deeper", "x"), "x");
  EXPECT_EQ(root["absent"]["deeper"].where(), "/cfg/run.yaml: absent.deeper");
  EXPECT_EQ(root["absent"].get_enum("color", kColorNames, Color::Green), Color::Green);
  EXPECT_FALSE(root["absent"].present());
  EXPECT_TRUE(root["absent"].elements().empty());
  EXPECT_EQ(root["section"].size(), 3u);
  // Assigning a node rebinds the handle only; the tree keeps its values.
  ConfigNode n = root["name"];
  n = root["count"];
  EXPECT_EQ(n.key(), "count");
  EXPECT_EQ(n.as<int64_t>(), 12);
  EXPECT_EQ(root.get<std::string>("name"), "demo");
}

TEST(ConfigNode, Paths) {
  const ConfigNode root = ConfigNode::parse(kText, "/cfg/run.yaml").with_variable("assets", "/data/assets");
  EXPECT_EQ(root["paths"].get_path("rel"), std::filesystem::path("/cfg/data/x.txt"));
  EXPECT_EQ(root["paths"].get_path("abs"), std::filesystem::path("/abs/y"));
  EXPECT_EQ(root["paths"].get_path("asset"), std::filesystem::path("/data/assets/z"));
  EXPECT_EQ(root["paths"].get_path("none"), std::filesystem::path());
  const ConfigNode plain = ConfigNode::parse(kText, "run.yaml");  // relative source: relative to "."
  EXPECT_EQ(plain["paths"].get_path("rel"), std::filesystem::path("data/x.txt"));
  EXPECT_EQ(error_of([&] { plain["paths"].get_path("asset"); }),
            "run.yaml: paths.asset (line 11): uses ${assets} but the configuration sets no `assets`");
}

TEST(ConfigNode, IntegersAreWholeAndInRange) {
  const ConfigNode root = ConfigNode::parse(
      "a: 64.9\nb: 1e3\nc: 99999999999\nd: -1\ne: 010\nf: +4\ng: 99999999999999999999\nh: [1, x]\n", "n.yaml");
  EXPECT_EQ(error_of([&] { root.get<int64_t>("a"); }), "n.yaml: a (line 1): expected an integer, found \"64.9\"");
  EXPECT_EQ(error_of([&] { root.get<int64_t>("b"); }), "n.yaml: b (line 2): expected an integer, found \"1e3\"");
  EXPECT_EQ(error_of([&] { root.get<int>("c"); }),
            "n.yaml: c (line 3): 99999999999 is out of range [-2147483648, 2147483647]");
  EXPECT_EQ(root.get<int64_t>("c"), 99999999999);
  EXPECT_EQ(error_of([&] { root.get<uint64_t>("d"); }),
            "n.yaml: d (line 4): expected a non-negative integer, found \"-1\"");
  EXPECT_EQ(root.get<int64_t>("d"), -1);
  EXPECT_EQ(root.get<int64_t>("e"), 10);  // decimal, not yaml-cpp's octal 8
  EXPECT_EQ(root.get<int64_t>("f"), 4);
  EXPECT_EQ(error_of([&] { root.get<int64_t>("g"); }),
            "n.yaml: g (line 7): 99999999999999999999 is out of range [-9223372036854775808, 9223372036854775807]");
  EXPECT_EQ(error_of([&] { root.get<std::vector<int64_t>>("h"); }),
            "n.yaml: h[1] (line 8): expected an integer, found \"x\"");
}

TEST(ConfigNode, TypeErrorsNameFileKeyLineAndValue) {
  const ConfigNode root = ConfigNode::parse("top:\n  n: lots\n  b: maybe\n  l: [1]\n  m: {x: 1}\n  s: 3\n", "t.yaml");
  const ConfigNode top = root["top"];
  EXPECT_EQ(error_of([&] { top.get<double>("n"); }), "t.yaml: top.n (line 2): expected a number, found \"lots\"");
  EXPECT_EQ(error_of([&] { top.get<bool>("b"); }), "t.yaml: top.b (line 3): expected true or false, found \"maybe\"");
  EXPECT_EQ(error_of([&] { top.get<std::string>("l"); }), "t.yaml: top.l (line 4): expected a string, found a list");
  EXPECT_EQ(error_of([&] { top.get<double>("m"); }), "t.yaml: top.m (line 5): expected a number, found a mapping");
  EXPECT_EQ(error_of([&] { top.get<std::vector<double>>("s"); }), "t.yaml: top.s (line 6): expected a list, found \"3\"");
  EXPECT_EQ(error_of([&] { top.get<std::vector<double>>("m"); }), "t.yaml: top.m (line 5): expected a list, found a mapping");
  EXPECT_EQ(error_of([&] { top.get<double>("gone"); }), "t.yaml: top (line 2): missing key \"gone\"");
  EXPECT_EQ(error_of([&] { top["n"]["deeper"]; }), "t.yaml: top.n (line 2): expected a mapping");
  EXPECT_EQ(error_of([&] { top.get_enum("n", kColorNames, Color::Red); }),
            "t.yaml: top.n (line 2): unknown color \"lots\" (known: red, green, blue)");
  EXPECT_EQ(error_of([&] { top["s"].fail("too small"); }), "t.yaml: top.s (line 6): too small");
}

TEST(ConfigNode, UnknownKeysListTheKnownOnes) {
  const ConfigNode root = ConfigNode::parse("a: 1\nsec:\n  x: 1\n  y: 2\n", "k.yaml");
  EXPECT_EQ(error_of([&] { root.check_keys({"a", "sec"}); }), "no error");
  EXPECT_EQ(error_of([&] { root.check_keys({"sec"}); }), "k.yaml: a (line 1): unknown key \"a\" (known: sec)");
  EXPECT_EQ(error_of([&] { root["sec"].check_keys({"x", "z"}); }),
            "k.yaml: sec.y (line 4): unknown key \"y\" (known: x, z)");
  EXPECT_EQ(error_of([&] { root["missing"].check_keys({"x"}); }), "no error");
  EXPECT_EQ(error_of([&] { root["a"].check_keys({"x"}); }), "k.yaml: a (line 1): expected a mapping");
}

TEST(ConfigNode, DuplicateKeysAreRefusedWithBothLines) {
  EXPECT_EQ(error_of([] { ConfigNode::parse("a: 1\nb: 2\na: 3\n", "d.yaml"); }),
            "d.yaml: a (line 3): duplicate key \"a\" (first at line 1)");
  EXPECT_EQ(error_of([] { ConfigNode::parse("s:\n  - {x: 1}\n  - x: 1\n    y: 2\n    x: 5\n", "d.yaml"); }),
            "d.yaml: s[1].x (line 5): duplicate key \"x\" (first at line 3)");
  // A tree changed in code is checked when wrapped.
  YAML::Node tree = YAML::Load("a: {b: 1, b: 2}\n");
  EXPECT_EQ(error_of([&] { ConfigNode::wrap(tree, "w.yaml"); }),
            "w.yaml: a.b (line 1): duplicate key \"b\" (first at line 1)");
}

TEST(ConfigNode, InvalidYamlAndOddRoots) {
  EXPECT_THAT(error_of([] { ConfigNode::parse("a: [1,\n", "bad.yaml"); }), HasSubstr("bad.yaml: not valid YAML: "));
  const ConfigNode empty = ConfigNode::parse("", "e.yaml");
  EXPECT_FALSE(empty.present());
  EXPECT_EQ(empty.get<int64_t>("x", 3), 3);
  EXPECT_EQ(error_of([] { ConfigNode::parse("- 1\n", "l.yaml").require_map("a plan"); }),
            "l.yaml: expected a mapping (a plan)");
}

}  // namespace
}  // namespace divprune
