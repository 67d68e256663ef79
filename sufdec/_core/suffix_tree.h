// sufdec core: a depth-bounded, path-compressed suffix tree over many token sequences.
//
// Model. For every stored sequence s (tokens s[0..n)) and every position i, the
// "window" T_i = s[i : min(n, i + D)] (D = max_depth) is a path from the root. A node's
// count is the number of windows that pass through or end at it (= the number of
// positions where its path occurs, counting only occurrences of length <= D).
// cnt(x) = ends(x) + sum(cnt(children)). The shape is canonical: explicit nodes are
// the root, branching nodes and nodes where some window ends; unary nodes without
// ends are compressed into edges, so the tree depends only on the multiset of windows.
//
// Layout (memory and speed targets: < 80 B/token, ~1 us/token insert):
//  * Nodes are 28-byte PODs in one flat array, addressed by uint32. An edge label is a
//    span of a stored sequence: (ref_slot, ref_start, len), always "occurrence aligned"
//    (the ref sequence holds the whole root path at ref_start - pdepth), so a node can
//    take its ref from any child and merging a node into its child is O(1).
//  * A leaf with count 1 ("open leaf") holds the single window T_i; its length is not
//    stored but computed from the length of its sequence, so the long, unique windows
//    of a sequence being appended grow for free (Ukkonen's "once a leaf, always a
//    leaf"). Only the short, repeated windows (those still matching other text) cost a
//    child lookup per appended token.
//  * Children live in power-of-two blocks of a shared pool as {token, node, count},
//    sorted by count (descending) so the most frequent continuation is kids[0]; an
//    increment swaps the child with the first of its equal-count run (O(log fanout)).
//    Nodes with more than kHashMin children also get an open-addressing token->slot
//    hash.
//  * Removing a sequence needs another occurrence for every edge that pointed into it:
//    from a surviving child, else from a list of witnesses kept for repeated
//    full-depth windows, else from the tails of the other sequences.
//
// Thread safety: every public method takes the tree's shared_mutex (readers shared,
// writers exclusive), so the Python bindings can release the GIL.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace sufdec {

using u32 = uint32_t;
using u64 = uint64_t;
constexpr u32 kNil = 0xFFFFFFFFu;
constexpr u32 kFreeMark = 0xFFFFFFFEu;
constexpr u32 kMaxDepthLimit = 65535;

struct Node {
  u32 cnt;        // occurrences of the path (windows through or ending here)
  u32 parent;     // parent node; next free node when on the free list
  u32 ref_slot;   // sequence slot holding the edge label; kFreeMark when free
  u32 ref_start;  // label = seq[ref_start, ref_start + len)
  uint16_t pdepth;  // depth of the parent (the edge starts at this depth)
  uint16_t len;     // edge length; not used for open leaves (computed)
  u32 kids;       // offset of the child block in the pool
  u32 nkids;      // number of children (block capacity = bit_ceil(nkids))
};
static_assert(sizeof(Node) == 28, "Node must stay 28 bytes");

struct Kid {
  int32_t tok;
  u32 node;
  u32 cnt;  // mirror of node.cnt, kept here so sorting never chases pointers
};
static_assert(sizeof(Kid) == 12, "Kid must stay 12 bytes");

// Open-addressing hash token -> index in a child block (for high-fanout nodes).
struct FlatHash {
  std::vector<u64> slots;  // (tok << 32) | idx, kEmpty when empty
  u32 bits = 0;
  u32 size = 0;
  static constexpr u64 kEmpty = ~0ull;
  void init(u32 n);
  u32 home(int32_t tok) const {
    return static_cast<u32>((static_cast<u32>(tok) * 2654435761u) >> (32 - bits));
  }
  u32 find(int32_t tok) const;
  void insert(int32_t tok, u32 idx);
  void set(int32_t tok, u32 idx);
  void erase(int32_t tok);
  size_t bytes() const { return slots.capacity() * sizeof(u64); }
};

// Growable array of trivially copyable T for the two big arrays (nodes, child pool).
// Small arrays live on the heap; past kMapMin bytes the array is its own anonymous
// mapping, grown in place or moved by mremap (Linux), so growing never copies, never
// leaves the old buffer behind as a hole in the heap (with std::vector the freed buffers
// of earlier growths stayed in the process's RSS, ~25 B/token), and the capacity reserved
// ahead costs address space only: a page becomes resident when first written.
// resident_bytes() is what the array holds in RAM: the heap block, or the pages touched.
template <class T>
class PodArray {
 public:
  static_assert(std::is_trivially_copyable_v<T>, "PodArray holds plain data");
  PodArray() = default;
  PodArray(const PodArray&) = delete;
  PodArray& operator=(const PodArray&) = delete;
  ~PodArray() { release(); }
  size_t size() const { return n_; }
  size_t capacity() const { return cap_; }
  T* data() { return p_; }
  const T* data() const { return p_; }
  T& operator[](size_t i) { return p_[i]; }
  const T& operator[](size_t i) const { return p_[i]; }
  const T* begin() const { return p_; }
  const T* end() const { return p_ + n_; }
  void push_back(const T& v) {
    if (n_ == cap_) reserve_more(1);
    p_[n_++] = v;
    if (n_ > hw_) hw_ = n_;
  }
  // New elements are zero bytes (value-initialised for the PODs used here).
  void resize(size_t n) {
    if (n > cap_) reserve_more(n - n_);
    if (n > n_) std::memset(static_cast<void*>(p_ + n_), 0, (n - n_) * sizeof(T));
    n_ = n;
    if (n_ > hw_) hw_ = n_;
  }
  void clear() { n_ = 0; }
  size_t resident_bytes() const;

 private:
  static constexpr size_t kMapMin = size_t{1} << 20;  // bytes
  static constexpr size_t kPage = 4096;
  void reserve_more(size_t extra);
  void release();
  T* p_ = nullptr;
  size_t n_ = 0, cap_ = 0, hw_ = 0;  // hw_: most elements ever held (pages touched)
  bool mapped_ = false;
};

struct Seq {
  int64_t id = 0;
  bool alive = false;
  bool ring_ok = false;   // ring/b reflect the current tree
  u32 b = 0;              // tail positions j >= b are in ring; j < b are open leaves
  std::vector<int32_t> toks;
  std::vector<u32> ring;  // end node of tail window T_j at ring[j % D]
};

struct DraftOut {
  std::vector<int32_t> tokens;
  std::vector<int32_t> parents;
  std::vector<double> probs;
  double score = 0.0;
  int match_len = 0;
};

enum class SpecMode : int {
  kPaper = 0,   // per tree, the best-scoring match length; then the better tree
  kMerged = 1,  // one tree merged over both trees and several match lengths (see below)
};

struct SpecParams {
  int max_spec_tokens = 32;
  double max_spec_factor = 4.0;
  double max_spec_offset = 0.0;
  double min_token_prob = 0.1;
  bool use_tree = true;
  // merged mode only
  SpecMode mode = SpecMode::kPaper;
  double prior = 0.5;    // a: a continuation seen c times out of n gets c / (n + a)
  int max_sources = 3;   // match lengths used per tree (the deepest distinct-count ones)
};

// A point in the tree: on the edge into `node`, at absolute depth `depth`
// (pdepth(node) < depth <= depth(node)); the root is (0, 0).
struct Point {
  u32 node;
  u32 depth;
};

class SuffixTree;
class Matcher;

// Draft from both trees of a request: the global tree through its matcher (may be null)
// and the request's own tree, continuing its sequence seq_id (may be null).
//  * paper mode: the paper's rule, the higher-scoring of the two trees' drafts (ties:
//    the longer match, then the global tree).
//  * merged mode: every tree contributes its max_sources deepest match lengths with
//    distinct counts (of an equal-count run, the shortest length: same continuations,
//    more depth left). A source s scores a path x below its match point by
//    P_s(x) = prod_i c_i / (n_i + prior), the count of each step over the count of its
//    parent plus a prior (n_0 is the match count; in the request tree minus the request's
//    own current occurrence, which has no continuation). A path's probability is the
//    max over sources; the draft is the top budget paths by that probability
//    (budget = min(max_spec_tokens, floor(factor * longest match + offset))), which is
//    ancestor-closed because probabilities never increase from parent to child.
// Locks the request tree exclusively, then the global tree shared: do not pass one
// tree as both, nor use a tree as request in one thread and as global in another.
DraftOut speculate_both(Matcher* global, SuffixTree* request, int64_t seq_id, const SpecParams& p);

// Incremental matcher: holds the match points of every suffix of the context that
// occurs in the tree (lengths 1..L, L <= max_depth - 1). Feeding one token advances
// each of them by one step (a label compare, or a child lookup at a node), so a
// decode step costs O(L), independent of the context length p; no O(p^2) rematching.
// We keep all L points instead of suffix links because speculation tries every match
// length anyway, and suffix links would have to survive node merges and removals.
// If the tree changes between calls (append / remove), the matcher notices through the
// tree's epoch and rematches its last max_depth - 1 tokens once (O(max_depth^2) worst
// case; for the global tree that is once per stored output, not per decode step).
class Matcher {
 public:
  explicit Matcher(const SuffixTree* tree);
  void feed(const int32_t* toks, size_t n);
  void reset();
  int match_len();
  // Paper mode: best_over the match points; merged mode: as speculate_both(this, null).
  DraftOut speculate(const SpecParams& p);
  // Non-blocking forms (wait = false): false, and nothing done, while a writer holds the
  // tree; the bindings then release the interpreter lock and call the blocking form.
  bool try_feed(const int32_t* toks, size_t n, bool wait);
  bool try_speculate(const SpecParams& p, DraftOut* out, bool wait);
  const SuffixTree* tree() const { return tree_; }

 private:
  friend class SuffixTree;
  friend DraftOut speculate_both(Matcher*, SuffixTree*, int64_t, const SpecParams&);
  void sync();                   // rematch if the tree's epoch changed (lock held)
  void feed_one(int32_t t);      // lock held
  const SuffixTree* tree_;
  u64 epoch_ = 0;
  std::vector<Point> pts_;       // pts_[l-1]: point of the suffix of length l
  std::vector<int32_t> recent_;  // last max_depth - 1 tokens fed (for rematching)
};

class SuffixTree {
 public:
  explicit SuffixTree(int max_depth = 64);

  // --- sequences ---
  void append(int64_t seq_id, const int32_t* toks, size_t n);
  void remove(int64_t seq_id);
  bool has(int64_t seq_id) const;
  std::vector<int32_t> sequence(int64_t seq_id) const;
  std::vector<int64_t> sequence_ids() const;
  u64 num_sequences() const;
  u64 num_tokens() const;
  u64 num_nodes() const;
  int max_depth() const { return static_cast<int>(D_); }

  // --- drafting ---
  // Draft from scratch for a context, in p.mode (the global tree alone): the same draft
  // as a Matcher fed the context, without pushing every match point through the whole
  // context. The longest matching suffix L is found first by galloping / bisecting
  // verified walks from the root (a suffix's occurrence implies every shorter one's), then
  // only the match lengths speculation actually tries are located, each by a blind walk
  // over the nodes of its path (no label compares: it is known to occur).
  DraftOut speculate(const int32_t* ctx, size_t n, const SpecParams& p) const;
  // The same; with wait = false it does nothing and returns false when a writer holds
  // the tree (for callers that must not block while holding an interpreter lock).
  bool try_speculate(const int32_t* ctx, size_t n, const SpecParams& p, DraftOut* out, bool wait) const;
  DraftOut speculate_tail(int64_t seq_id, const SpecParams& p);

  // --- persistence ---
  std::string serialize() const;
  static std::unique_ptr<SuffixTree> load(const char* data, size_t n);

  // --- introspection ---
  std::string check_integrity() const;  // "" when consistent
  // Bytes held in RAM (allocator overhead and rounding included, big arrays by pages
  // touched), in all and by part.
  u64 memory_bytes() const;
  std::vector<std::pair<std::string, u64>> memory_breakdown() const;
  std::vector<u64> depth_histogram() const;
  u64 count(const int32_t* prefix, size_t n) const;
  std::vector<std::pair<int32_t, u64>> top_continuations(const int32_t* prefix, size_t n,
                                                         int k) const;
  // Subtree under prefix, per token: (parent index or -1, token, count), at most
  // top_k children per node and max_depth tokens below the prefix, parents first.
  std::vector<std::tuple<int32_t, int32_t, u64>> continuations(const int32_t* prefix,
                                                               size_t n, int max_depth,
                                                               int top_k) const;

  mutable std::shared_mutex mu;

 private:
  friend class Matcher;
  friend DraftOut speculate_both(Matcher*, SuffixTree*, int64_t, const SpecParams&);
  // A match point of one tree used as a source of the merged draft.
  struct Source {
    const SuffixTree* tree;
    Point pt;
    double n_eff;  // match count (minus the request's own occurrence)
    int len;       // match length
  };
  // Appends the deepest max_sources distinct-count match lengths of pts (pts[l-1] =
  // point of length l); `minus` is subtracted from every count.
  void collect_sources(const std::vector<Point>& pts, u32 minus, int max_sources,
                       std::vector<Source>& out) const;
  void tail_points(u32 slot, std::vector<Point>& pts) const;  // ring must be valid
  static void expand_merged(const std::vector<Source>& srcs, int budget, const SpecParams& p,
                            DraftOut& out);
  static constexpr u32 kRoot = 0;
  static constexpr u32 kHashMin = 16;

  // node helpers
  bool is_open(const Node& x) const { return x.cnt == 1 && x.nkids == 0; }
  u32 edge_len(u32 v) const;
  u32 depth_of(u32 v) const { return nodes_[v].pdepth + edge_len(v); }
  int32_t label_at(u32 v, u32 k) const {
    const Node& x = nodes_[v];
    return seqs_[x.ref_slot].toks[x.ref_start + k];
  }
  Kid* kids_of(u32 v) { return pool_.data() + nodes_[v].kids; }
  const Kid* kids_of(u32 v) const { return pool_.data() + nodes_[v].kids; }
  u32 find_kid(u32 v, int32_t tok) const;  // index in v's block or kNil
  u32 new_node();
  void free_node(u32 v);
  u32 alloc_block(u32 cls);
  void free_block(u32 off, u32 cls);
  void add_kid(u32 v, int32_t tok, u32 child, u32 cnt);  // appended at the end (cnt 1..)
  void drop_last_kid(u32 v);                              // remove the last entry
  void swap_kids(u32 v, u32 i, u32 j);
  void inc_kid(u32 v, u32 idx);  // count +1, keeps order
  void dec_kid(u32 v, u32 idx);  // count -1, keeps order
  void maybe_merge(u32 v);       // compress v into its only child if unary w/o ends

  // append machinery
  struct Ext {
    u32 node;
    bool unique;
  };
  Ext extend(u32 u, u32 d, int32_t t, u32 slot, u32 j);
  void on_close(u32 leaf, u32 depth);  // an open leaf got a second occurrence
  void ensure_ring(u32 slot);
  u32 find_end(u32 slot, u32 j, u32 len) const;  // node where window s[j, j+len) ends
  void append_one(u32 slot, int32_t t);
  void dmap_add(u32 node, u32 slot, u32 pos);
  void dmap_erase(u32 node, u32 slot, u32 pos);

  // remove machinery
  bool find_witness(u32 v, u32 dead_slot, u32* slot, u32* pos) const;
  std::vector<int32_t> path_of(u32 v) const;

  // drafting
  bool advance(Point& p, int32_t t) const;
  // Verified walk of s[0, len) from the root: the number of leading tokens that occur
  // (len when all do, then *out is the point of s).
  u32 walk(const int32_t* s, u32 len, Point* out) const;
  // Point of s[0, len), 1 <= len, known to occur: child lookups only.
  Point descend(const int32_t* s, u32 len) const;
  // Longest suffix L of ctx[0, n) that occurs (at most max_depth - 1); known[l] is set
  // to the point of every length l the search walked to (always L), else node kNil.
  u32 longest_suffix(const int32_t* ctx, size_t n, std::vector<Point>& known) const;
  // Generic over where the points come from: pt_of(l) is the (normalized or not) point
  // of the suffix of length l, 1 <= l <= L, called at most once per l, longest first.
  template <class PtOf>
  DraftOut best_over_lengths(size_t L, PtOf&& pt_of, const SpecParams& p, u32 minus) const;
  // The draft of this tree alone in p.mode (paper: best_over; merged: as speculate_both
  // with a matcher and no request tree) from the points of lengths 1..L.
  template <class PtOf>
  DraftOut draft_lengths(size_t L, PtOf&& pt_of, const SpecParams& p) const;
  template <class PtOf>
  void collect_sources_lengths(size_t L, PtOf&& pt_of, u32 minus, int max_sources,
                               std::vector<Source>& out) const;
  void normalize(Point& p) const;
  // `minus` is taken off the count of the start point (the request's own occurrence).
  void expand(Point start, int budget, const SpecParams& p, DraftOut& out, u32 minus = 0) const;
  DraftOut best_over(const std::vector<Point>& pts, const SpecParams& p, u32 minus = 0) const;
  Point locate(const int32_t* prefix, size_t n, bool* ok) const;

  void rebuild_hashes();
  std::string validate_structure() const;

  u32 D_;
  PodArray<Node> nodes_;
  u32 free_nodes_ = kNil;
  u64 live_nodes_ = 1;
  PodArray<Kid> pool_;
  std::vector<std::vector<u32>> free_blocks_;  // per size class
  std::unordered_map<u32, FlatHash> hashes_;  // hashed nodes other than the root
  FlatHash root_hash_;                         // the root is looked up for every token
  FlatHash* hash_get(u32 v) { return v == kRoot ? &root_hash_ : &hashes_.find(v)->second; }
  const FlatHash* hash_get(u32 v) const { return v == kRoot ? &root_hash_ : &hashes_.find(v)->second; }
  FlatHash& hash_make(u32 v) { return v == kRoot ? root_hash_ : hashes_[v]; }
  void hash_drop(u32 v) {
    if (v == kRoot) root_hash_ = FlatHash{};
    else hashes_.erase(v);
  }
  std::vector<Seq> seqs_;
  std::vector<u32> slen_;  // sequence lengths, compact (open-leaf lengths read them)
  std::vector<u32> free_slots_;
  std::unordered_map<int64_t, u32> slot_of_;
  u64 num_tokens_ = 0;
  // witnesses of repeated full-depth windows: node -> packed (slot << 32 | pos)
  std::unordered_map<u32, std::vector<u64>> dmap_;
  u64 epoch_ = 1;  // bumped on every mutation (and whenever a node id is freed)
};

}  // namespace sufdec
