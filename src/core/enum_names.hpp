#pragma once
// Enum <-> name tables: the one place where the names of an enum's values are spelled. Each enum that is read
// from or written to text (configs, plans, the archive, the command line) declares one constexpr table next to
// the enum:
//
//   inline constexpr auto kQuantMethodNames =
//       enum_names<QuantMethod>("quantization", {{QuantMethod::None, "none"}, {QuantMethod::Int8, "int8"}});
//
// name(value) gives the first name listed for a value; later names of the same value are accepted aliases when
// parsing (e.g. "fp16" for float16) but never written. parse() refuses an unknown name with the message every
// lookup shares: `WHERE: unknown quantization "int4" (known: none, int8)`.
#include <fmt/format.h>

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "core/errors.hpp"

namespace divprune {

template <typename E>
struct EnumName {
  E value;
  std::string_view name;
};

template <typename E, size_t N>
struct EnumNames {
  std::string_view what;  // the noun of the messages: "unknown <what> \"x\""
  std::array<EnumName<E>, N> entries;

  // The canonical (first listed) name of `value`; "?" for a value the table lacks.
  constexpr std::string_view name(E value) const {
    for (const EnumName<E>& e : entries)
      if (e.value == value) return e.name;
    return "?";
  }

  constexpr std::optional<E> find(std::string_view name) const {
    for (const EnumName<E>& e : entries)
      if (e.name == name) return e.value;
    return std::nullopt;
  }

  // The canonical names in table order, "a, b, c" (aliases left out).
  std::string known() const {
    std::string out;
    for (size_t i = 0; i < N; ++i)
      if (is_canonical(i)) out += (out.empty() ? "" : ", ") + std::string(entries[i].name);
    return out;
  }

  // The value named `name`; InputError "where: unknown <what> \"name\" (known: ...)" otherwise (no prefix when
  // `where` is empty).
  E parse(std::string_view name, std::string_view where) const {
    if (const std::optional<E> value = find(name)) return *value;
    throw InputError(fmt::format("{}{}unknown {} \"{}\" (known: {})", where, where.empty() ? "" : ": ", what, name,
                                 known()));
  }

  // No name listed twice (checked by static_assert next to every table).
  constexpr bool names_unique() const {
    for (size_t i = 0; i < N; ++i)
      for (size_t j = i + 1; j < N; ++j)
        if (entries[i].name == entries[j].name) return false;
    return true;
  }

 private:
  constexpr bool is_canonical(size_t i) const {
    for (size_t j = 0; j < i; ++j)
      if (entries[j].value == entries[i].value) return false;
    return true;
  }
};

// Builds a table; the entry count is deduced from the list.
template <typename E, size_t N>
constexpr EnumNames<E, N> enum_names(std::string_view what, const EnumName<E> (&entries)[N]) {
  EnumNames<E, N> table{what, {}};
  for (size_t i = 0; i < N; ++i) table.entries[i] = entries[i];
  return table;
}

}  // namespace divprune
