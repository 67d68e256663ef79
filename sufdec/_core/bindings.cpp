// nanobind bindings for the suffix-tree core. Inputs are validated here (token range,
// parameter ranges, buffer types); bulk calls run with the GIL released. Per-step calls
// (feed a few tokens, draft) keep it unless a writer holds the tree: releasing and
// retaking it would cost more than the call's own work.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/unique_ptr.h>
#include <nanobind/stl/vector.h>

#include <cmath>
#include <limits>

#include "suffix_tree.h"

namespace nb = nanobind;
using namespace nb::literals;
using sufdec::DraftOut;
using sufdec::Matcher;
using sufdec::SpecParams;
using sufdec::SuffixTree;

namespace {

constexpr int64_t kMaxTok = std::numeric_limits<int32_t>::max();

[[noreturn]] void bad_token(int64_t v) {
  throw nb::value_error(("token ids must be in [0, 2**31 - 1], got " + std::to_string(v)).c_str());
}

template <class T>
void copy_checked(const void* data, size_t n, int64_t stride, std::vector<int32_t>& out) {
  const char* p = static_cast<const char*>(data);
  out.resize(n);
  if (stride == 1) {  // contiguous: a vectorizable range check (any bit above 31 or the
                      // sign bit set is out of range), then a converting copy
    const T* q = reinterpret_cast<const T*>(p);
    uint64_t high = 0;
    for (size_t i = 0; i < n; ++i) high |= static_cast<uint64_t>(static_cast<int64_t>(q[i])) >> 31;
    if (high == 0) {
      int32_t* o = out.data();
      for (size_t i = 0; i < n; ++i) o[i] = static_cast<int32_t>(q[i]);
      return;
    }
  }
  for (size_t i = 0; i < n; ++i) {
    T v = *reinterpret_cast<const T*>(p + static_cast<int64_t>(i) * stride * static_cast<int64_t>(sizeof(T)));
    if constexpr (std::is_signed_v<T>) {
      if (v < 0) bad_token(static_cast<int64_t>(v));
    }
    if (static_cast<uint64_t>(v) > static_cast<uint64_t>(kMaxTok)) bad_token(static_cast<int64_t>(v));
    out[i] = static_cast<int32_t>(v);
  }
}

// A 1-d integer buffer (numpy arrays): read in place through the buffer protocol, which
// costs far less than a DLPack export per call. False if obj has no usable buffer.
bool buffer_tokens(nb::handle obj, std::vector<int32_t>& out) {
  if (!PyObject_CheckBuffer(obj.ptr()) || PyBytes_Check(obj.ptr()) || PyByteArray_Check(obj.ptr())) return false;
  Py_buffer v;
  if (PyObject_GetBuffer(obj.ptr(), &v, PyBUF_RECORDS_RO) != 0) {
    PyErr_Clear();
    return false;
  }
  struct Release {
    Py_buffer* b;
    ~Release() { PyBuffer_Release(b); }
  } release{&v};
  const char* f = v.format ? v.format : "B";
  if (*f == '@' || *f == '=' || (*f == '<' && PY_LITTLE_ENDIAN) || (*f == '>' && PY_BIG_ENDIAN)) ++f;
  if (f[0] == '\0' || f[1] != '\0') return false;  // not a plain native scalar: DLPack path decides
  if (v.ndim != 1) throw nb::value_error("token array must be 1-dimensional");
  size_t n = static_cast<size_t>(v.shape[0]);
  if (n && v.strides[0] % v.itemsize != 0) return false;
  int64_t st = n ? v.strides[0] / v.itemsize : 1;
  bool is_signed = *f == 'b' || *f == 'h' || *f == 'i' || *f == 'l' || *f == 'q' || *f == 'n';
  bool is_unsigned = *f == 'B' || *f == 'H' || *f == 'I' || *f == 'L' || *f == 'Q' || *f == 'N';
  if (!is_signed && !is_unsigned) throw nb::value_error("token array must have an integer dtype");
  switch (v.itemsize * (is_signed ? 1 : -1)) {
    case 4: copy_checked<int32_t>(v.buf, n, st, out); return true;
    case 8: copy_checked<int64_t>(v.buf, n, st, out); return true;
    case 2: copy_checked<int16_t>(v.buf, n, st, out); return true;
    case 1: copy_checked<int8_t>(v.buf, n, st, out); return true;
    case -4: copy_checked<uint32_t>(v.buf, n, st, out); return true;
    case -8: copy_checked<uint64_t>(v.buf, n, st, out); return true;
    case -2: copy_checked<uint16_t>(v.buf, n, st, out); return true;
    case -1: copy_checked<uint8_t>(v.buf, n, st, out); return true;
    default: return false;
  }
}

// Accepts a 1-d numpy (or any dlpack/buffer) integer array, or any Python sequence of ints.
std::vector<int32_t> to_tokens(nb::handle obj) {
  std::vector<int32_t> out;
  nb::ndarray<nb::ro, nb::device::cpu> arr;
  // lists and tuples first: the per-step feed([token]) should not pay a failed array cast
  bool listlike = PyList_Check(obj.ptr()) || PyTuple_Check(obj.ptr());
  if (!listlike && buffer_tokens(obj, out)) return out;
  if (!listlike && !PyUnicode_Check(obj.ptr()) && !PyBytes_Check(obj.ptr()) && nb::try_cast(obj, arr, false)) {
    if (arr.ndim() != 1) throw nb::value_error("token array must be 1-dimensional");
    size_t n = arr.shape(0);
    int64_t st = n ? arr.stride(0) : 1;
    nb::dlpack::dtype dt = arr.dtype();
    const void* d = arr.data();
    if (dt == nb::dtype<int32_t>()) copy_checked<int32_t>(d, n, st, out);
    else if (dt == nb::dtype<int64_t>()) copy_checked<int64_t>(d, n, st, out);
    else if (dt == nb::dtype<uint32_t>()) copy_checked<uint32_t>(d, n, st, out);
    else if (dt == nb::dtype<uint64_t>()) copy_checked<uint64_t>(d, n, st, out);
    else if (dt == nb::dtype<int16_t>()) copy_checked<int16_t>(d, n, st, out);
    else if (dt == nb::dtype<uint16_t>()) copy_checked<uint16_t>(d, n, st, out);
    else if (dt == nb::dtype<int8_t>()) copy_checked<int8_t>(d, n, st, out);
    else if (dt == nb::dtype<uint8_t>()) copy_checked<uint8_t>(d, n, st, out);
    else throw nb::value_error("token array must have an integer dtype");
    return out;
  }
  if (!PySequence_Check(obj.ptr()) || PyUnicode_Check(obj.ptr()) || PyBytes_Check(obj.ptr()))
    throw nb::value_error("tokens must be a sequence of ints or a 1-d integer array");
  nb::object seq = nb::steal(PySequence_Fast(obj.ptr(), "tokens must be a sequence of ints"));
  if (!seq.is_valid()) throw nb::python_error();
  Py_ssize_t n = PySequence_Fast_GET_SIZE(seq.ptr());
  PyObject** items = PySequence_Fast_ITEMS(seq.ptr());
  out.resize(static_cast<size_t>(n));
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* it = items[i];
    if (PyFloat_Check(it) || !PyIndex_Check(it)) throw nb::value_error("token ids must be ints");
    nb::object idx = nb::steal(PyNumber_Index(it));
    if (!idx.is_valid()) throw nb::python_error();
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(idx.ptr(), &overflow);
    if (overflow > 0) throw nb::value_error("token ids must be in [0, 2**31 - 1] (got a huge int)");
    if (overflow < 0) bad_token(std::numeric_limits<int64_t>::min());
    if (v == -1 && PyErr_Occurred()) throw nb::python_error();
    if (v < 0 || v > kMaxTok) bad_token(v);
    out[static_cast<size_t>(i)] = static_cast<int32_t>(v);
  }
  return out;
}

SpecParams make_params(int max_spec_tokens, double max_spec_factor, double max_spec_offset,
                       double min_token_prob, bool use_tree, const std::string& mode = "paper",
                       double prior = 0.5, int max_sources = 3) {
  if (max_spec_tokens < 0) throw nb::value_error("max_spec_tokens must be >= 0");
  if (!std::isfinite(max_spec_factor) || max_spec_factor < 0)
    throw nb::value_error("max_spec_factor must be a finite number >= 0");
  if (!std::isfinite(max_spec_offset)) throw nb::value_error("max_spec_offset must be finite");
  if (!(min_token_prob >= 0.0 && min_token_prob <= 1.0))
    throw nb::value_error("min_token_prob must be in [0, 1]");
  if (!(std::isfinite(prior) && prior >= 0.0)) throw nb::value_error("prior must be a finite number >= 0");
  if (max_sources < 1) throw nb::value_error("max_sources must be >= 1");
  SpecParams p;
  p.max_spec_tokens = max_spec_tokens;
  p.max_spec_factor = max_spec_factor;
  p.max_spec_offset = max_spec_offset;
  p.min_token_prob = min_token_prob;
  p.use_tree = use_tree;
  if (mode == "paper") p.mode = sufdec::SpecMode::kPaper;
  else if (mode == "merged") p.mode = sufdec::SpecMode::kMerged;
  else throw nb::value_error("mode must be 'paper' or 'merged'");
  p.prior = prior;
  p.max_sources = max_sources;
  return p;
}

struct BufferView {
  Py_buffer view{};
  bool ok = false;
  explicit BufferView(nb::handle obj) {
    if (PyObject_GetBuffer(obj.ptr(), &view, PyBUF_SIMPLE) != 0) {
      PyErr_Clear();
      throw nb::type_error("expected a bytes-like object");
    }
    ok = true;
  }
  ~BufferView() {
    if (ok) PyBuffer_Release(&view);
  }
};

#define SPEC_ARGS                                                                           \
  "max_spec_tokens"_a = 32, "max_spec_factor"_a = 4.0, "max_spec_offset"_a = 0.0,           \
      "min_token_prob"_a = 0.1, "use_tree"_a = true
// speculate_both also takes the merged-mode parameters
#define BOTH_ARGS SPEC_ARGS, "mode"_a = "paper", "prior"_a = 0.5, "max_sources"_a = 3

}  // namespace

// A from-scratch draft: without releasing the GIL unless a writer holds the tree.
static DraftOut speculate_scratch(const SuffixTree& t, nb::handle context, const SpecParams& p) {
  std::vector<int32_t> c = to_tokens(context);
  DraftOut out;
  if (!t.try_speculate(c.data(), c.size(), p, &out, false)) {
    nb::gil_scoped_release g;
    t.try_speculate(c.data(), c.size(), p, &out, true);
  }
  return out;
}

NB_MODULE(_suffix_tree, m) {
  m.doc() = "sufdec C++ suffix-tree core (see sufdec/_core/suffix_tree.h)";

  nb::class_<DraftOut>(m, "CoreDraft", "A drafted token tree (parents precede children; -1 = root).")
      .def_ro("token_ids", &DraftOut::tokens)
      .def_ro("parents", &DraftOut::parents)
      .def_ro("probs", &DraftOut::probs)
      .def_ro("score", &DraftOut::score)
      .def_ro("match_len", &DraftOut::match_len)
      .def("__len__", [](const DraftOut& d) { return d.tokens.size(); })
      .def("__repr__", [](const DraftOut& d) {
        return "CoreDraft(n=" + std::to_string(d.tokens.size()) + ", score=" + std::to_string(d.score) +
               ", match_len=" + std::to_string(d.match_len) + ")";
      });

  nb::class_<SuffixTree>(m, "SuffixTree",
                         "Depth-bounded suffix tree over many int32 token sequences, keyed by int64 ids.")
      .def(
          "__init__",
          [](SuffixTree* self, int max_depth) {
            if (max_depth < 1 || max_depth > static_cast<int>(sufdec::kMaxDepthLimit))
              throw nb::value_error("max_depth must be in [1, 65535]");
            new (self) SuffixTree(max_depth);
          },
          "max_depth"_a = 64)
      .def(
          "append",
          [](SuffixTree& t, int64_t seq_id, nb::handle tokens) {
            std::vector<int32_t> v = to_tokens(tokens);
            nb::gil_scoped_release g;
            t.append(seq_id, v.data(), v.size());
          },
          "seq_id"_a, "tokens"_a,
          "Create sequence seq_id or extend it with tokens (every new window is inserted).")
      .def(
          "remove",
          [](SuffixTree& t, int64_t seq_id) {
            nb::gil_scoped_release g;
            t.remove(seq_id);
          },
          "seq_id"_a, "Take the sequence out; the tree is left exactly as if it was never added.")
      .def("has", &SuffixTree::has, "seq_id"_a)
      .def("__contains__", &SuffixTree::has, "seq_id"_a)
      .def("sequence", &SuffixTree::sequence, "seq_id"_a, "The stored tokens of a sequence.")
      .def("sequence_ids", &SuffixTree::sequence_ids, "All sequence ids, sorted.")
      .def_prop_ro("num_sequences", &SuffixTree::num_sequences)
      .def_prop_ro("num_tokens", &SuffixTree::num_tokens)
      .def_prop_ro("num_nodes", &SuffixTree::num_nodes)
      .def_prop_ro("max_depth", &SuffixTree::max_depth)
      .def(
          "speculate",
          [](const SuffixTree& t, nb::handle context, const SpecParams& p) {
            if (p.mode == sufdec::SpecMode::kMerged && !p.use_tree)
              throw nb::value_error("merged mode drafts trees: use_tree must be true");
            return speculate_scratch(t, context, p);
          },
          "context"_a, "config"_a,
          "Draft from scratch for a context in config's mode, from this tree alone: the same\n"
          "draft as a Matcher fed the context (the longest matching suffix is found first).")
      .def(
          "speculate",
          [](const SuffixTree& t, nb::handle context, int max_spec_tokens, double max_spec_factor,
             double max_spec_offset, double min_token_prob, bool use_tree) {
            SpecParams p = make_params(max_spec_tokens, max_spec_factor, max_spec_offset, min_token_prob, use_tree);
            return speculate_scratch(t, context, p);
          },
          "context"_a, SPEC_ARGS,
          "Draft from scratch for a context (matches its last max_depth-1 tokens).")
      .def(
          "speculate_tail",
          [](SuffixTree& t, int64_t seq_id, int max_spec_tokens, double max_spec_factor,
             double max_spec_offset, double min_token_prob, bool use_tree) {
            SpecParams p = make_params(max_spec_tokens, max_spec_factor, max_spec_offset, min_token_prob, use_tree);
            nb::gil_scoped_release g;
            return t.speculate_tail(seq_id, p);
          },
          "seq_id"_a, SPEC_ARGS,
          "Draft continuing the stored sequence seq_id itself (per-request tree): the match\n"
          "points are the sequence's own tail windows, kept up to date by append().")
      .def("matcher", [](nb::handle self) { return new Matcher(nb::cast<const SuffixTree*>(self)); },
           nb::keep_alive<0, 1>(), "A new incremental Matcher over this tree.")
      .def("serialize",
           [](const SuffixTree& t) {
             std::string s;
             {
               nb::gil_scoped_release g;
               s = t.serialize();
             }
             return nb::bytes(s.data(), s.size());
           })
      .def_static(
          "load",
          [](nb::handle buffer) {
            BufferView b(buffer);
            const char* p = static_cast<const char*>(b.view.buf);
            size_t n = static_cast<size_t>(b.view.len);
            std::unique_ptr<SuffixTree> t;
            {
              nb::gil_scoped_release g;
              t = SuffixTree::load(p, n);
            }
            return t;
          },
          "buffer"_a, "Load a tree from serialize() bytes; a corrupt buffer raises ValueError.")
      .def(
          "check_integrity",
          [](const SuffixTree& t) {
            nb::gil_scoped_release g;
            return t.check_integrity();
          },
          "Full consistency check; returns '' when consistent, else the first problem found.")
      .def("memory_bytes", &SuffixTree::memory_bytes,
           "Bytes the tree holds in RAM (allocator overhead included, big arrays by pages touched).")
      .def("memory_breakdown", &SuffixTree::memory_breakdown,
           "memory_bytes() by part, as (name, bytes) pairs: nodes, child_pool, child_hashes,\n"
           "tokens, tail_rings, sequence_table, witnesses.")
      .def("depth_histogram", &SuffixTree::depth_histogram, "Number of explicit nodes at each depth 0..max_depth.")
      .def(
          "count", [](const SuffixTree& t, nb::handle prefix) {
            std::vector<int32_t> v = to_tokens(prefix);
            return t.count(v.data(), v.size());
          },
          "prefix"_a, "Occurrences of prefix (0 if absent or longer than max_depth).")
      .def(
          "top_continuations",
          [](const SuffixTree& t, nb::handle prefix, int k) {
            std::vector<int32_t> v = to_tokens(prefix);
            return t.top_continuations(v.data(), v.size(), k);
          },
          "prefix"_a, "k"_a = 10, "The k most frequent next tokens after prefix, as (token, count).")
      .def(
          "continuations",
          [](const SuffixTree& t, nb::handle prefix, int max_depth, int top_k) {
            std::vector<int32_t> v = to_tokens(prefix);
            return t.continuations(v.data(), v.size(), max_depth, top_k);
          },
          "prefix"_a, "max_depth"_a = 4, "top_k"_a = 3,
          "Subtree under prefix, one entry per token: (parent index or -1, token, count),\n"
          "parents first, at most top_k children per node and max_depth levels.");

  nb::class_<Matcher>(m, "Matcher",
                      "Incremental matcher over a SuffixTree for one decoding request.\n\n"
                      "Holds the match point of every suffix of the fed context that occurs in\n"
                      "the tree (lengths 1..L, L <= max_depth-1). feed() advances each by one\n"
                      "step per token (one label compare or child lookup), so a decode step costs\n"
                      "O(L), never a rematch of the context. We keep all L points instead of\n"
                      "suffix links because speculation tries every match length anyway and\n"
                      "suffix links would have to survive node merges and removals; when the\n"
                      "tree changes (append/remove), the matcher rematches its last max_depth-1\n"
                      "tokens once.")
      .def(nb::init<const SuffixTree*>(), "tree"_a, nb::keep_alive<1, 2>())
      .def(
          "feed",
          [](Matcher& mt, nb::handle tokens) {
            std::vector<int32_t> v = to_tokens(tokens);
            // A decode step is less work than releasing the GIL: keep it unless a writer
            // holds the tree (then wait without it) or the feed is long.
            if (v.size() <= 64 && mt.try_feed(v.data(), v.size(), false)) return;
            nb::gil_scoped_release g;
            mt.feed(v.data(), v.size());
          },
          "tokens"_a, "Append tokens to the context.")
      .def("reset", &Matcher::reset, "Forget the context.")
      .def_prop_ro("match_len", &Matcher::match_len, "Length of the longest context suffix found in the tree.")
      .def(
          "speculate",
          [](Matcher& mt, const SpecParams& p) {
            if (p.mode == sufdec::SpecMode::kMerged && !p.use_tree)
              throw nb::value_error("merged mode drafts trees: use_tree must be true");
            DraftOut out;
            if (!mt.try_speculate(p, &out, false)) {
              nb::gil_scoped_release g;
              mt.try_speculate(p, &out, true);
            }
            return out;
          },
          "config"_a,
          "Draft for the current context in config's mode, from this tree alone (a SpecConfig\n"
          "built once is cheaper than keywords on every call).")
      .def(
          "speculate",
          [](Matcher& mt, int max_spec_tokens, double max_spec_factor, double max_spec_offset,
             double min_token_prob, bool use_tree) {
            SpecParams p = make_params(max_spec_tokens, max_spec_factor, max_spec_offset, min_token_prob, use_tree);
            DraftOut out;
            if (!mt.try_speculate(p, &out, false)) {
              nb::gil_scoped_release g;
              mt.try_speculate(p, &out, true);
            }
            return out;
          },
          SPEC_ARGS, "Draft for the current context (same rules as SuffixTree.speculate).");

  nb::class_<SpecParams>(m, "SpecConfig",
                         "Validated drafting parameters, built once and passed to speculate_both\n"
                         "(cheaper than keyword arguments on every call).")
      .def(
          "__init__",
          [](SpecParams* self, int max_spec_tokens, double max_spec_factor, double max_spec_offset,
             double min_token_prob, bool use_tree, const std::string& mode, double prior, int max_sources) {
            new (self) SpecParams(make_params(max_spec_tokens, max_spec_factor, max_spec_offset,
                                              min_token_prob, use_tree, mode, prior, max_sources));
          },
          BOTH_ARGS)
      .def_ro("max_spec_tokens", &SpecParams::max_spec_tokens)
      .def_ro("max_spec_factor", &SpecParams::max_spec_factor)
      .def_ro("max_spec_offset", &SpecParams::max_spec_offset)
      .def_ro("min_token_prob", &SpecParams::min_token_prob)
      .def_ro("use_tree", &SpecParams::use_tree)
      .def_prop_ro("mode", [](const SpecParams& p) { return p.mode == sufdec::SpecMode::kMerged ? "merged" : "paper"; })
      .def_ro("prior", &SpecParams::prior)
      .def_ro("max_sources", &SpecParams::max_sources);

  const char* both_doc =
      "Draft from a request's two trees: the global tree through its fed Matcher and the\n"
      "request tree continuing its sequence request_seq_id (either may be None).\n"
      "mode='paper': the higher-scoring of the two trees' best drafts (SuffixDecoding).\n"
      "mode='merged': one tree merged over both trees and the max_sources deepest\n"
      "distinct-count match lengths of each; a path's probability is the max over those\n"
      "sources of prod c/(n + prior) (request counts exclude the request's own current\n"
      "occurrence); the top-budget paths are kept, probabilities never increase from a\n"
      "node to its children. Parameters as a SpecConfig, or as keywords.";
  auto both = [](Matcher* matcher, SuffixTree* request, int64_t seq_id, const SpecParams& p) {
    if (matcher && request && matcher->tree() == request)
      throw nb::value_error("the global and the request tree must differ");
    nb::gil_scoped_release g;
    return sufdec::speculate_both(matcher, request, seq_id, p);
  };
  m.def("speculate_both", both, "matcher"_a.none(), "request"_a.none(), "request_seq_id"_a,
        "config"_a, both_doc);
  m.def(
      "speculate_both",
      [both](Matcher* matcher, SuffixTree* request, int64_t request_seq_id, int max_spec_tokens,
             double max_spec_factor, double max_spec_offset, double min_token_prob, bool use_tree,
             const std::string& mode, double prior, int max_sources) {
        return both(matcher, request, request_seq_id,
                    make_params(max_spec_tokens, max_spec_factor, max_spec_offset, min_token_prob,
                                use_tree, mode, prior, max_sources));
      },
      "matcher"_a.none(), "request"_a.none(), "request_seq_id"_a = 0, BOTH_ARGS, both_doc);
}
