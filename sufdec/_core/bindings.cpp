#include <nanobind/nanobind.h>
#include "suffix_tree.h"
namespace nb = nanobind;
struct SuffixTree { int max_depth = 64; };
struct Matcher {};
NB_MODULE(_suffix_tree, m) {
  nb::class_<SuffixTree>(m, "SuffixTree").def(nb::init<>()).def_ro("max_depth", &SuffixTree::max_depth);
  nb::class_<Matcher>(m, "Matcher").def(nb::init<>());
}
