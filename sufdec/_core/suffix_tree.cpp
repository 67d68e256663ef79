// Implementation of the depth-bounded suffix tree; see suffix_tree.h for the design.
#include "suffix_tree.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>

#include <sys/mman.h>
#include <queue>
#include <tuple>

namespace sufdec {

namespace {

inline u32 bit_ceil32(u32 n) {
  if (n <= 1) return n;
  return 1u << (32 - __builtin_clz(n - 1));
}
inline u32 cls_of(u32 cap) { return cap <= 1 ? 0 : 31 - __builtin_clz(cap); }
// What glibc's malloc takes for an n-byte block: 8 bytes of header, 16-byte steps, 32 at least.
inline u64 heap_bytes(size_t n) { return n ? std::max<size_t>(32, (n + 8 + 15) & ~size_t{15}) : 0; }
// A node-based hash map: one block per entry (next pointer + value) and the bucket array.
template <class M>
u64 map_bytes(const M& m) {
  return m.size() * heap_bytes(sizeof(void*) + sizeof(typename M::value_type)) + heap_bytes(m.bucket_count() * sizeof(void*));
}
inline u64 pack(u32 slot, u32 pos) { return (static_cast<u64>(slot) << 32) | pos; }

[[noreturn]] void corrupt(const char* what) {
  throw std::logic_error(std::string("sufdec suffix tree internal inconsistency: ") + what);
}

}  // namespace

// ---------------------------------------------------------------- PodArray

template <class T>
void PodArray<T>::reserve_more(size_t extra) {
  size_t want = n_ + extra;
  if (want <= cap_) return;
  size_t bytes = want * sizeof(T);
  if (bytes < kMapMin) {  // heap: grow by 1.5x
    size_t cap = std::max({want, cap_ + cap_ / 2, size_t{16}});
    void* q = std::realloc(static_cast<void*>(p_), cap * sizeof(T));
    if (!q) throw std::bad_alloc();
    p_ = static_cast<T*>(q);
    cap_ = cap;
    return;
  }
  // mapped: double the reservation (untouched pages cost nothing)
  size_t nb = std::max(bytes, 2 * cap_ * sizeof(T));
  nb = (nb + kPage - 1) & ~(kPage - 1);
  void* q;
  if (mapped_) {
#ifdef __linux__
    q = mremap(p_, ((cap_ * sizeof(T) + kPage - 1) & ~(kPage - 1)), nb, MREMAP_MAYMOVE);
    if (q == MAP_FAILED) throw std::bad_alloc();
#else
    q = mmap(nullptr, nb, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (q == MAP_FAILED) throw std::bad_alloc();
    std::memcpy(q, static_cast<void*>(p_), n_ * sizeof(T));
    munmap(p_, (cap_ * sizeof(T) + kPage - 1) & ~(kPage - 1));
#endif
  } else {
    q = mmap(nullptr, nb, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (q == MAP_FAILED) throw std::bad_alloc();
    if (n_) std::memcpy(q, static_cast<void*>(p_), n_ * sizeof(T));
    std::free(p_);
    mapped_ = true;
    hw_ = n_;  // the fresh mapping holds only what was copied
  }
  p_ = static_cast<T*>(q);
  cap_ = nb / sizeof(T);
}

template <class T>
void PodArray<T>::release() {
  if (mapped_) munmap(p_, (cap_ * sizeof(T) + kPage - 1) & ~(kPage - 1));
  else std::free(p_);
  p_ = nullptr;
  n_ = cap_ = hw_ = 0;
  mapped_ = false;
}

template <class T>
size_t PodArray<T>::resident_bytes() const {
  if (!mapped_) return heap_bytes(cap_ * sizeof(T));
  return (hw_ * sizeof(T) + kPage - 1) & ~(kPage - 1);
}

template class PodArray<Node>;
template class PodArray<Kid>;

// ---------------------------------------------------------------- FlatHash

void FlatHash::init(u32 n) {
  bits = 4;
  while ((1u << bits) < 2 * n + 2) ++bits;
  slots.assign(size_t{1} << bits, kEmpty);
  size = 0;
}

u32 FlatHash::find(int32_t tok) const {
  const u32 mask = (1u << bits) - 1;
  for (u32 i = home(tok);; i = (i + 1) & mask) {
    u64 s = slots[i];
    if (s == kEmpty) return kNil;
    if (static_cast<int32_t>(s >> 32) == tok) return static_cast<u32>(s);
  }
}

void FlatHash::insert(int32_t tok, u32 idx) {
  if (2 * (size + 1) + 2 > (1u << bits)) {
    std::vector<u64> old;
    old.swap(slots);
    u32 n = size;
    init(n + 1);
    for (u64 s : old)
      if (s != kEmpty) insert(static_cast<int32_t>(s >> 32), static_cast<u32>(s));
  }
  const u32 mask = (1u << bits) - 1;
  u32 i = home(tok);
  while (slots[i] != kEmpty) i = (i + 1) & mask;
  slots[i] = (static_cast<u64>(static_cast<u32>(tok)) << 32) | idx;
  ++size;
}

void FlatHash::set(int32_t tok, u32 idx) {
  const u32 mask = (1u << bits) - 1;
  for (u32 i = home(tok);; i = (i + 1) & mask) {
    u64 s = slots[i];
    if (s == kEmpty) corrupt("hash set of a missing token");
    if (static_cast<int32_t>(s >> 32) == tok) {
      slots[i] = (static_cast<u64>(static_cast<u32>(tok)) << 32) | idx;
      return;
    }
  }
}

void FlatHash::erase(int32_t tok) {
  const u32 mask = (1u << bits) - 1;
  u32 i = home(tok);
  for (;; i = (i + 1) & mask) {
    if (slots[i] == kEmpty) corrupt("hash erase of a missing token");
    if (static_cast<int32_t>(slots[i] >> 32) == tok) break;
  }
  // backward-shift deletion (linear probing)
  u32 j = i;
  for (;;) {
    j = (j + 1) & mask;
    if (slots[j] == kEmpty) break;
    u32 h = home(static_cast<int32_t>(slots[j] >> 32));
    // move slots[j] to i if its home is not cyclically in (i, j]
    bool between = (i <= j) ? (h > i && h <= j) : (h > i || h <= j);
    if (!between) {
      slots[i] = slots[j];
      i = j;
    }
  }
  slots[i] = kEmpty;
  --size;
}

// ---------------------------------------------------------------- basics

SuffixTree::SuffixTree(int max_depth) {
  if (max_depth < 1 || max_depth > static_cast<int>(kMaxDepthLimit))
    throw std::invalid_argument("max_depth must be in [1, 65535]");
  D_ = static_cast<u32>(max_depth);
  Node root{};
  root.parent = kNil;
  root.ref_slot = kNil;
  nodes_.push_back(root);
  free_blocks_.resize(33);
}

u32 SuffixTree::edge_len(u32 v) const {
  const Node& x = nodes_[v];
  if (v != kRoot && x.cnt == 1 && x.nkids == 0) {
    u32 n = slen_[x.ref_slot];
    return std::min(n - x.ref_start, D_ - x.pdepth);
  }
  return x.len;
}

u32 SuffixTree::find_kid(u32 v, int32_t tok) const {
  const Node& x = nodes_[v];
  if (x.nkids > kHashMin) return hash_get(v)->find(tok);
  const Kid* k = pool_.data() + x.kids;
  for (u32 i = 0; i < x.nkids; ++i)
    if (k[i].tok == tok) return i;
  return kNil;
}

u32 SuffixTree::new_node() {
  u32 v;
  if (free_nodes_ != kNil) {
    v = free_nodes_;
    free_nodes_ = nodes_[v].parent;
  } else {
    if (nodes_.size() >= kFreeMark) throw std::length_error("suffix tree node limit reached");
    v = static_cast<u32>(nodes_.size());
    nodes_.push_back(Node{});
  }
  nodes_[v] = Node{};
  ++live_nodes_;
  return v;
}

void SuffixTree::free_node(u32 v) {
  Node& x = nodes_[v];
  if (x.nkids) free_block(x.kids, cls_of(bit_ceil32(x.nkids)));
  if (x.nkids > kHashMin) hash_drop(v);
  x = Node{};
  x.ref_slot = kFreeMark;
  x.parent = free_nodes_;
  free_nodes_ = v;
  --live_nodes_;
  ++epoch_;
}

u32 SuffixTree::alloc_block(u32 cls) {
  auto& fl = free_blocks_[cls];
  if (!fl.empty()) {
    u32 off = fl.back();
    fl.pop_back();
    return off;
  }
  size_t off = pool_.size();
  if (off + (size_t{1} << cls) >= kFreeMark) throw std::length_error("suffix tree child pool limit reached");
  pool_.resize(off + (size_t{1} << cls));
  return static_cast<u32>(off);
}

void SuffixTree::free_block(u32 off, u32 cls) { free_blocks_[cls].push_back(off); }

void SuffixTree::add_kid(u32 v, int32_t tok, u32 child, u32 cnt) {
  u32 n = nodes_[v].nkids;
  u32 cap = bit_ceil32(n);
  if (n == cap) {  // full (or empty): move to the next size class
    u32 ncls = n == 0 ? 0 : cls_of(cap) + 1;
    u32 off = alloc_block(ncls);
    if (n) {
      std::memcpy(pool_.data() + off, pool_.data() + nodes_[v].kids, n * sizeof(Kid));
      free_block(nodes_[v].kids, cls_of(cap));
    }
    nodes_[v].kids = off;
  }
  pool_[nodes_[v].kids + n] = Kid{tok, child, cnt};
  nodes_[v].nkids = n + 1;
  if (n + 1 > kHashMin) {
    if (n + 1 == kHashMin + 1) {
      FlatHash& h = hash_make(v);
      h.init(n + 1);
      const Kid* k = kids_of(v);
      for (u32 i = 0; i <= n; ++i) h.insert(k[i].tok, i);
    } else {
      hash_get(v)->insert(tok, n);
    }
  }
}

void SuffixTree::drop_last_kid(u32 v) {
  u32 n = nodes_[v].nkids;
  int32_t tok = kids_of(v)[n - 1].tok;
  if (n > kHashMin) {
    if (n - 1 > kHashMin) hash_get(v)->erase(tok);
    else hash_drop(v);
  }
  u32 m = n - 1;
  nodes_[v].nkids = m;
  u32 cap = bit_ceil32(n);
  if (m == 0) {
    free_block(nodes_[v].kids, cls_of(cap));
    nodes_[v].kids = 0;
  } else if (bit_ceil32(m) < cap) {
    u32 off = alloc_block(cls_of(bit_ceil32(m)));
    std::memcpy(pool_.data() + off, pool_.data() + nodes_[v].kids, m * sizeof(Kid));
    free_block(nodes_[v].kids, cls_of(cap));
    nodes_[v].kids = off;
  }
}

void SuffixTree::swap_kids(u32 v, u32 i, u32 j) {
  if (i == j) return;
  Kid* k = kids_of(v);
  std::swap(k[i], k[j]);
  if (nodes_[v].nkids > kHashMin) {
    FlatHash* h = hash_get(v);
    h->set(k[i].tok, i);
    h->set(k[j].tok, j);
  }
}

void SuffixTree::inc_kid(u32 v, u32 idx) {
  Kid* k = kids_of(v);
  u32 c = k[idx].cnt;
  // first index in [0, idx] whose count is <= c (sorted descending) == start of c-run
  u32 lo = 0, hi = idx;
  while (lo < hi) {
    u32 mid = (lo + hi) / 2;
    if (k[mid].cnt > c) lo = mid + 1;
    else hi = mid;
  }
  swap_kids(v, lo, idx);
  k = kids_of(v);
  ++k[lo].cnt;
  ++nodes_[k[lo].node].cnt;
}

void SuffixTree::dec_kid(u32 v, u32 idx) {
  Kid* k = kids_of(v);
  u32 n = nodes_[v].nkids;
  u32 c = k[idx].cnt;
  if (c == 0) corrupt("count underflow");
  // first index in [idx, n) whose count is < c; the c-run ends just before it
  u32 lo = idx, hi = n;
  while (lo < hi) {
    u32 mid = (lo + hi) / 2;
    if (k[mid].cnt >= c) lo = mid + 1;
    else hi = mid;
  }
  u32 last = lo - 1;
  swap_kids(v, idx, last);
  k = kids_of(v);
  --k[last].cnt;
  --nodes_[k[last].node].cnt;
}

void SuffixTree::maybe_merge(u32 u) {
  if (u == kRoot) return;
  Node& U = nodes_[u];
  if (U.nkids != 1) return;
  const Kid k0 = kids_of(u)[0];
  if (k0.cnt != U.cnt) return;  // u still has ends
  u32 c = k0.node;
  u32 p = U.parent;
  int32_t tok = label_at(u, 0);
  Node& C = nodes_[c];
  bool c_open = is_open(C);
  C.pdepth = U.pdepth;
  C.ref_start -= U.len;
  if (!c_open) C.len = static_cast<uint16_t>(C.len + U.len);
  C.parent = p;
  u32 idx = find_kid(p, tok);
  if (idx == kNil) corrupt("merge: node missing from its parent");
  kids_of(p)[idx].node = c;
  free_node(u);
}

void SuffixTree::dmap_add(u32 node, u32 slot, u32 pos) { dmap_[node].push_back(pack(slot, pos)); }

void SuffixTree::dmap_erase(u32 node, u32 slot, u32 pos) {
  auto it = dmap_.find(node);
  if (it == dmap_.end()) return;
  auto& v = it->second;
  u64 key = pack(slot, pos);
  for (size_t i = 0; i < v.size(); ++i)
    if (v[i] == key) {
      v[i] = v.back();
      v.pop_back();
      break;
    }
  if (v.empty()) dmap_.erase(it);
}

// ---------------------------------------------------------------- append

void SuffixTree::on_close(u32 leaf, u32 depth) {
  Node& L = nodes_[leaf];
  L.len = static_cast<uint16_t>(edge_len(leaf));  // materialize before the count changes
  u32 s = L.ref_slot;
  u32 j = L.ref_start - L.pdepth;
  if (depth == D_) {
    dmap_add(leaf, s, j);
  } else {
    Seq& S = seqs_[s];
    if (S.ring_ok) {
      S.ring[j % D_] = leaf;
      if (j < S.b) S.b = j;
    }
  }
}

SuffixTree::Ext SuffixTree::extend(u32 u, u32 d, int32_t t, u32 slot, u32 j) {
  if (u != kRoot && is_open(nodes_[u])) return {u, true};
  u32 idx = find_kid(u, t);
  if (idx == kNil) {
    u32 w = new_node();
    Node& W = nodes_[w];
    W.cnt = 1;
    W.parent = u;
    W.ref_slot = slot;
    W.ref_start = j + d;
    W.pdepth = static_cast<uint16_t>(d);
    add_kid(u, t, w, 1);
    return {w, true};
  }
  u32 c = kids_of(u)[idx].node;
  u32 L = edge_len(c);
  if (L == 1) {
    if (is_open(nodes_[c])) on_close(c, d + 1);
    inc_kid(u, idx);
    maybe_merge(u);
    return {c, false};
  }
  // split c's edge after its first token
  bool c_open = is_open(nodes_[c]);
  u32 w = new_node();
  Node& C = nodes_[c];
  Node& W = nodes_[w];
  W.cnt = C.cnt;
  W.parent = u;
  W.ref_slot = C.ref_slot;
  W.ref_start = C.ref_start;
  W.pdepth = static_cast<uint16_t>(d);
  W.len = 1;
  C.parent = w;
  C.pdepth = static_cast<uint16_t>(d + 1);
  C.ref_start += 1;
  if (!c_open) C.len = static_cast<uint16_t>(L - 1);
  u32 ccnt = C.cnt;
  int32_t tok2 = label_at(c, 0);
  kids_of(u)[idx].node = w;
  add_kid(w, tok2, c, ccnt);
  inc_kid(u, idx);
  maybe_merge(u);
  return {w, false};
}

u32 SuffixTree::find_end(u32 slot, u32 j, u32 len) const {
  const auto& toks = seqs_[slot].toks;
  u32 x = kRoot, d = 0;
  while (d < len) {
    u32 idx = find_kid(x, toks[j + d]);
    if (idx == kNil) corrupt("window not found");
    x = kids_of(x)[idx].node;
    d += edge_len(x);
  }
  if (d != len) corrupt("window ends inside an edge");
  return x;
}

void SuffixTree::ensure_ring(u32 slot) {
  Seq& S = seqs_[slot];
  if (S.ring_ok) return;
  S.ring.assign(D_, 0);
  u32 n = static_cast<u32>(S.toks.size());
  u32 lo = n >= D_ - 1 ? n - (D_ - 1) : 0;
  S.b = lo;
  bool uniq = true;
  for (u32 j = lo; j < n; ++j) {
    u32 e = find_end(slot, j, n - j);
    if (uniq && is_open(nodes_[e])) {
      S.b = j + 1;
    } else {
      uniq = false;
      S.ring[j % D_] = e;
    }
  }
  S.ring_ok = true;
}

void SuffixTree::append_one(u32 slot, int32_t t) {
  ensure_ring(slot);
  Seq& S0 = seqs_[slot];
  u32 n = static_cast<u32>(S0.toks.size());
  if (n == 0xFFFFFFF0u) throw std::length_error("sequence too long");
  S0.toks.push_back(t);
  slen_[slot] = n + 1;
  ++num_tokens_;
  ++nodes_[kRoot].cnt;
  u32 lo = (n + 1 > D_) ? n + 1 - D_ : 0;
  u32 j0 = std::max(S0.b, lo);
  bool uniq = true;
  u32 nb = j0;
  const u32* ring = seqs_[slot].ring.data();
  for (u32 j = j0; j <= n; ++j) {
    // The tail nodes are scattered: prefetch the node two positions ahead and the child
    // block of the next one, so their cache misses overlap with this step's work.
    if (j + 2 < n) __builtin_prefetch(&nodes_[ring[(j + 2) % D_]]);
    if (j + 1 < n) {
      const Node& nx = nodes_[ring[(j + 1) % D_]];
      if (nx.nkids) __builtin_prefetch(pool_.data() + nx.kids);
    }
    u32 u = j < n ? ring[j % D_] : kRoot;
    Ext e = extend(u, n - j, t, slot, j);
    bool full = (n + 1 - j == D_);
    if (uniq && e.unique) {
      nb = j + 1;
    } else {
      uniq = false;
      if (!full) seqs_[slot].ring[j % D_] = e.node;
    }
    if (full && !is_open(nodes_[e.node])) dmap_add(e.node, slot, j);
    ring = seqs_[slot].ring.data();
  }
  seqs_[slot].b = nb;
}

void SuffixTree::append(int64_t seq_id, const int32_t* toks, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (toks[i] < 0) throw std::invalid_argument("token ids must be in [0, 2**31 - 1]");
  std::unique_lock<std::shared_mutex> lock(mu);
  u32 slot;
  auto it = slot_of_.find(seq_id);
  if (it == slot_of_.end()) {
    if (!free_slots_.empty()) {
      slot = free_slots_.back();
      free_slots_.pop_back();
    } else {
      slot = static_cast<u32>(seqs_.size());
      seqs_.emplace_back();
      slen_.push_back(0);
    }
    slen_[slot] = 0;
    Seq& S = seqs_[slot];
    S.id = seq_id;
    S.alive = true;
    S.ring_ok = false;
    S.b = 0;
    S.toks.clear();
    slot_of_[seq_id] = slot;
  } else {
    slot = it->second;
  }
  // A new sequence gets exactly its size; one that keeps growing (a request's tree, fed
  // a few tokens per step) grows by half, not by a reallocation per append.
  std::vector<int32_t>& tk = seqs_[slot].toks;
  if (tk.size() + n > tk.capacity())
    tk.reserve(tk.empty() ? n : std::max(tk.size() + n, tk.capacity() + tk.capacity() / 2));
  for (size_t i = 0; i < n; ++i) append_one(slot, toks[i]);
  ++epoch_;  // new occurrences may lengthen the matches of live matchers
}

// ---------------------------------------------------------------- remove

std::vector<int32_t> SuffixTree::path_of(u32 v) const {
  std::vector<u32> chain;
  for (u32 x = v; x != kRoot; x = nodes_[x].parent) chain.push_back(x);
  std::vector<int32_t> out;
  for (size_t i = chain.size(); i-- > 0;) {
    u32 x = chain[i];
    u32 L = edge_len(x);
    for (u32 k = 0; k < L; ++k) out.push_back(label_at(x, k));
  }
  return out;
}

bool SuffixTree::find_witness(u32 v, u32 dead, u32* slot, u32* pos) const {
  // v has no children: every remaining occurrence of its path ends at v.
  u32 depth = nodes_[v].pdepth + nodes_[v].len;
  // (v is closed or was closed before the removal: its stored len is valid, unless it
  // was open with a dead ref, in which case its count dropped to 0 and it is freed.)
  if (depth == D_) {
    auto it = dmap_.find(v);
    if (it == dmap_.end()) return false;
    for (u64 e : it->second)
      if (static_cast<u32>(e >> 32) != dead) {
        *slot = static_cast<u32>(e >> 32);
        *pos = static_cast<u32>(e);
        return true;
      }
    return false;
  }
  // a tail of some other sequence
  std::vector<int32_t> path;
  {
    std::vector<u32> chain;
    for (u32 x = v; x != kRoot; x = nodes_[x].parent) chain.push_back(x);
    for (size_t i = chain.size(); i-- > 0;) {
      u32 x = chain[i];
      u32 L = nodes_[x].len;
      for (u32 k = 0; k < L; ++k) path.push_back(label_at(x, k));
    }
  }
  for (u32 s = 0; s < seqs_.size(); ++s) {
    if (s == dead || !seqs_[s].alive) continue;
    const auto& t = seqs_[s].toks;
    if (t.size() < depth) continue;
    if (std::equal(path.begin(), path.end(), t.end() - depth)) {
      *slot = s;
      *pos = static_cast<u32>(t.size() - depth);
      return true;
    }
  }
  return false;
}

void SuffixTree::remove(int64_t seq_id) {
  std::unique_lock<std::shared_mutex> lock(mu);
  auto it = slot_of_.find(seq_id);
  if (it == slot_of_.end()) throw std::invalid_argument("unknown sequence id " + std::to_string(seq_id));
  u32 s = it->second;
  const std::vector<int32_t>& toks = seqs_[s].toks;
  u32 n = static_cast<u32>(toks.size());
  seqs_[s].ring_ok = false;
  // Phase 1: take every window's occurrence off its path.
  std::vector<std::pair<u32, u32>> touched;  // (depth, node)
  touched.reserve(size_t{n} * 4);
  for (u32 j = 0; j < n; ++j) {
    u32 len = std::min(n - j, D_);
    u32 x = kRoot, d = 0;
    if (nodes_[kRoot].cnt == 0) corrupt("root count underflow");
    --nodes_[kRoot].cnt;
    while (d < len) {
      u32 idx = find_kid(x, toks[j + d]);
      if (idx == kNil) corrupt("remove: window not found");
      u32 c = kids_of(x)[idx].node;
      u32 L = edge_len(c);
      if (nodes_[c].cnt == 1 && nodes_[c].nkids == 0) nodes_[c].len = static_cast<uint16_t>(L);
      dec_kid(x, idx);
      d += L;
      touched.emplace_back(d, c);
      x = c;
    }
    if (d != len) corrupt("remove: window ends inside an edge");
    if (len == D_) dmap_erase(x, s, j);
  }
  std::sort(touched.begin(), touched.end(),
            [](const auto& a, const auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; });
  touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
  // Phase 2 (deepest first): free emptied nodes, re-point refs into s.
  for (auto [dep, v] : touched) {
    Node& X = nodes_[v];
    if (X.ref_slot == kFreeMark) continue;
    if (X.cnt == 0) {
      u32 p = X.parent;
      u32 idx = find_kid(p, label_at(v, 0));
      if (idx == kNil) corrupt("remove: node missing from its parent");
      swap_kids(p, idx, nodes_[p].nkids - 1);
      drop_last_kid(p);
      dmap_.erase(v);
      free_node(v);
      continue;
    }
    if (X.ref_slot == s) {
      if (X.nkids > 0) {
        const Node& C = nodes_[kids_of(v)[0].node];
        X.ref_slot = C.ref_slot;
        X.ref_start = C.ref_start - X.len;
      } else {
        u32 ws, wp;
        if (!find_witness(v, s, &ws, &wp)) corrupt("remove: no surviving occurrence");
        X.ref_slot = ws;
        X.ref_start = wp + X.pdepth;
      }
    }
    if (X.cnt == 1 && X.nkids == 0 && dep == D_) dmap_.erase(v);
  }
  // Phase 3: restore the canonical shape (compress unary nodes without ends).
  for (auto [dep, v] : touched) {
    if (nodes_[v].ref_slot == kFreeMark) continue;
    maybe_merge(v);
  }
  Seq& S = seqs_[s];
  num_tokens_ -= n;
  S.alive = false;
  S.ring_ok = false;
  std::vector<int32_t>().swap(S.toks);
  std::vector<u32>().swap(S.ring);
  slen_[s] = 0;
  slot_of_.erase(it);
  free_slots_.push_back(s);
  ++epoch_;
}

// ---------------------------------------------------------------- queries

bool SuffixTree::has(int64_t seq_id) const {
  std::shared_lock<std::shared_mutex> lock(mu);
  return slot_of_.count(seq_id) != 0;
}
std::vector<int32_t> SuffixTree::sequence(int64_t seq_id) const {
  std::shared_lock<std::shared_mutex> lock(mu);
  auto it = slot_of_.find(seq_id);
  if (it == slot_of_.end()) throw std::invalid_argument("unknown sequence id " + std::to_string(seq_id));
  return seqs_[it->second].toks;
}
std::vector<int64_t> SuffixTree::sequence_ids() const {
  std::shared_lock<std::shared_mutex> lock(mu);
  std::vector<int64_t> out;
  for (const auto& S : seqs_)
    if (S.alive) out.push_back(S.id);
  std::sort(out.begin(), out.end());
  return out;
}
u64 SuffixTree::num_sequences() const {
  std::shared_lock<std::shared_mutex> lock(mu);
  return slot_of_.size();
}
u64 SuffixTree::num_tokens() const {
  std::shared_lock<std::shared_mutex> lock(mu);
  return num_tokens_;
}
u64 SuffixTree::num_nodes() const {
  std::shared_lock<std::shared_mutex> lock(mu);
  return live_nodes_;
}

std::vector<std::pair<std::string, u64>> SuffixTree::memory_breakdown() const {
  std::shared_lock<std::shared_mutex> lock(mu);
  // Every block as the allocator holds it (headers and rounding included); the big
  // arrays by the pages they have touched. Python's own objects are not counted.
  u64 free_lists = heap_bytes(free_blocks_.capacity() * sizeof(free_blocks_[0]));
  for (const auto& fl : free_blocks_) free_lists += heap_bytes(fl.capacity() * sizeof(u32));
  u64 hashes = map_bytes(hashes_) + heap_bytes(root_hash_.bytes());
  for (const auto& kv : hashes_) hashes += heap_bytes(kv.second.bytes());
  u64 seqs = heap_bytes(seqs_.capacity() * sizeof(Seq)) + heap_bytes(slen_.capacity() * sizeof(u32)) +
             heap_bytes(free_slots_.capacity() * sizeof(u32)) + map_bytes(slot_of_);
  u64 toks = 0, rings = 0;
  for (const auto& S : seqs_) {
    toks += heap_bytes(S.toks.capacity() * sizeof(int32_t));
    rings += heap_bytes(S.ring.capacity() * sizeof(u32));
  }
  u64 wit = map_bytes(dmap_);
  for (const auto& kv : dmap_) wit += heap_bytes(kv.second.capacity() * sizeof(u64));
  return {{"nodes", nodes_.resident_bytes()},
          {"child_pool", pool_.resident_bytes() + free_lists},
          {"child_hashes", hashes},
          {"tokens", toks},
          {"tail_rings", rings},
          {"sequence_table", seqs + sizeof(*this)},
          {"witnesses", wit}};
}

u64 SuffixTree::memory_bytes() const {
  u64 b = 0;
  for (const auto& kv : memory_breakdown()) b += kv.second;
  return b;
}

std::vector<u64> SuffixTree::depth_histogram() const {
  std::shared_lock<std::shared_mutex> lock(mu);
  std::vector<u64> h(D_ + 1, 0);
  for (u32 v = 0; v < nodes_.size(); ++v) {
    if (nodes_[v].ref_slot == kFreeMark) continue;
    if (v == kRoot) {
      h[0]++;
      continue;
    }
    h[std::min(depth_of(v), D_)]++;
  }
  return h;
}

// ---------------------------------------------------------------- drafting

void SuffixTree::normalize(Point& p) const {
  while (p.node != kRoot && p.depth <= nodes_[p.node].pdepth) p.node = nodes_[p.node].parent;
}

bool SuffixTree::advance(Point& p, int32_t t) const {
  u32 dv = p.node == kRoot ? 0 : depth_of(p.node);
  if (p.depth < dv) {
    if (label_at(p.node, p.depth - nodes_[p.node].pdepth) != t) return false;
    ++p.depth;
    return true;
  }
  u32 idx = find_kid(p.node, t);
  if (idx == kNil) return false;
  p.node = kids_of(p.node)[idx].node;
  ++p.depth;
  return true;
}

Point SuffixTree::locate(const int32_t* prefix, size_t n, bool* ok) const {
  Point p{kRoot, 0};
  *ok = true;
  for (size_t i = 0; i < n; ++i)
    if (!advance(p, prefix[i])) {
      *ok = false;
      return p;
    }
  return p;
}

namespace {
struct Item {
  double prob;
  u64 order;
  u32 node;
  u32 depth;
  int32_t parent;
  int32_t tok;
  bool operator<(const Item& o) const {  // max-heap: higher prob first, then FIFO
    if (prob != o.prob) return prob < o.prob;
    return order > o.order;
  }
};
}  // namespace

void SuffixTree::expand(Point start, int budget, const SpecParams& p, DraftOut& out, u32 minus) const {
  const double minp = p.min_token_prob;
  if (!p.use_tree) {
    Point cur = start;
    double prob = 1.0;
    int32_t parent = -1;
    while (static_cast<int>(out.tokens.size()) < budget) {
      u32 v = cur.node;
      u32 dv = v == kRoot ? 0 : depth_of(v);
      int32_t tok;
      if (cur.depth < dv) {
        tok = label_at(v, cur.depth - nodes_[v].pdepth);
        cur.depth++;
      } else {
        if (nodes_[v].nkids == 0) break;
        const Kid& k = kids_of(v)[0];
        u32 den = nodes_[v].cnt - (parent < 0 ? minus : 0);
        double q = prob * static_cast<double>(k.cnt) / static_cast<double>(den);
        if (q < minp) break;
        prob = q;
        tok = k.tok;
        cur = Point{k.node, cur.depth + 1};
      }
      if (prob < minp) break;
      out.tokens.push_back(tok);
      out.parents.push_back(parent);
      out.probs.push_back(prob);
      out.score += prob;
      parent = static_cast<int32_t>(out.tokens.size()) - 1;
    }
    return;
  }
  thread_local std::vector<Item> heap;
  heap.clear();
  u64 order = 0;
  auto push_children = [&](Point pt, double prob, int32_t parent) {
    u32 v = pt.node;
    u32 dv = v == kRoot ? 0 : depth_of(v);
    if (pt.depth < dv) {
      if (prob >= minp) {
        heap.push_back(Item{prob, order++, v, pt.depth + 1, parent, label_at(v, pt.depth - nodes_[v].pdepth)});
        std::push_heap(heap.begin(), heap.end());
      }
      return;
    }
    const Node& X = nodes_[v];
    const Kid* k = kids_of(v);
    int room = budget - static_cast<int>(out.tokens.size());
    const double denom = static_cast<double>(X.cnt - (parent < 0 ? minus : 0));
    for (u32 i = 0; i < X.nkids && room > 0; ++i, --room) {
      double q = prob * static_cast<double>(k[i].cnt) / denom;  // same rounding as p*c/n
      if (q < minp) break;
      heap.push_back(Item{q, order++, k[i].node, pt.depth + 1, parent, k[i].tok});
      std::push_heap(heap.begin(), heap.end());
    }
  };
  push_children(start, 1.0, -1);
  while (!heap.empty() && static_cast<int>(out.tokens.size()) < budget) {
    std::pop_heap(heap.begin(), heap.end());
    Item it = heap.back();
    heap.pop_back();
    int32_t idx = static_cast<int32_t>(out.tokens.size());
    out.tokens.push_back(it.tok);
    out.parents.push_back(it.parent);
    out.probs.push_back(it.prob);
    out.score += it.prob;
    Point pt{it.node, it.depth};
    // Fast path: along an edge the only continuation keeps the same probability; while
    // it beats everything in the heap it would be popped next anyway.
    if (pt.node != kRoot) {
      u32 dv = depth_of(pt.node);
      u32 pd = nodes_[pt.node].pdepth;
      while (pt.depth < dv && static_cast<int>(out.tokens.size()) < budget &&
             (heap.empty() || it.prob > heap.front().prob)) {
        out.tokens.push_back(label_at(pt.node, pt.depth - pd));
        out.parents.push_back(idx);
        out.probs.push_back(it.prob);
        out.score += it.prob;
        idx = static_cast<int32_t>(out.tokens.size()) - 1;
        ++pt.depth;
      }
    }
    if (static_cast<int>(out.tokens.size()) < budget) push_children(pt, it.prob, idx);
  }
}

template <class PtOf>
DraftOut SuffixTree::best_over_lengths(size_t L, PtOf&& pt_of, const SpecParams& p, u32 minus) const {
  // Match lengths are tried longest first. Two exact prunings:
  //  * a draft scores at most its budget, and budgets shrink with the match length, so
  //    once the best score reaches the budget of length l nothing shorter can win
  //    (ties go to the longer match);
  //  * if the suffix of length l occurs exactly as often as an already tried longer
  //    suffix L whose draft was not cut by the depth limit, every occurrence of the
  //    shorter one extends the longer one, so the continuation probabilities are the
  //    same and the smaller budget cannot score higher: skip it.
  DraftOut best;
  u32 ref_cnt = 0;  // count of the last tried length whose draft was not depth-limited
  for (size_t l = L; l >= 1; --l) {
    double raw = std::floor(p.max_spec_factor * static_cast<double>(l) + p.max_spec_offset);
    int budget = raw >= p.max_spec_tokens ? p.max_spec_tokens : (raw <= 0 ? 0 : static_cast<int>(raw));
    if (budget <= 0) break;  // factor >= 0: shorter matches get no larger budget
    if (best.score >= budget) break;  // cannot beat it
    Point pt = pt_of(l);
    normalize(pt);
    u32 c = nodes_[pt.node].cnt;
    if (c == ref_cnt || c <= minus) continue;
    DraftOut cur;
    expand(pt, budget, p, cur, minus);
    ref_cnt = (D_ - l >= static_cast<size_t>(budget)) ? c : 0;
    if (cur.score > best.score) {
      cur.match_len = static_cast<int>(l);
      best = std::move(cur);
    }
  }
  return best;
}

DraftOut SuffixTree::best_over(const std::vector<Point>& pts, const SpecParams& p, u32 minus) const {
  return best_over_lengths(pts.size(), [&](size_t l) { return pts[l - 1]; }, p, minus);
}

u32 SuffixTree::walk(const int32_t* s, u32 len, Point* out) const {
  u32 x = kRoot, d = 0;
  while (d < len) {
    u32 idx = find_kid(x, s[d]);
    if (idx == kNil) return d;
    u32 c = kids_of(x)[idx].node;
    const Node& C = nodes_[c];
    u32 end = std::min(C.pdepth + edge_len(c), len);
    const int32_t* lab = seqs_[C.ref_slot].toks.data() + (C.ref_start - d);
    for (u32 k = d + 1; k < end; ++k)  // the label's first token is the kid's token
      if (lab[k] != s[k]) return k;
    d = end;
    x = c;
  }
  *out = Point{x, len};
  return len;
}

Point SuffixTree::descend(const int32_t* s, u32 len) const {
  u32 x = kRoot, d = 0;
  for (;;) {
    u32 idx = find_kid(x, s[d]);
    if (idx == kNil) corrupt("descend: a known occurrence is missing");
    u32 c = kids_of(x)[idx].node;
    u32 dc = depth_of(c);
    if (dc >= len) return Point{c, len};
    x = c;
    d = dc;
  }
}

u32 SuffixTree::longest_suffix(const int32_t* ctx, size_t n, std::vector<Point>& known) const {
  // If a suffix occurs, so do all shorter ones: gallop 1, 2, 4, ... up to the first
  // miss, then bisect. Most contexts match only a few tokens, and a probe that misses
  // usually stops within its first tokens, so this costs a handful of short walks.
  u32 take = static_cast<u32>(std::min<size_t>(n, D_ - 1));
  const int32_t* end = ctx + n;
  // The first probes start at the last few tokens: overlap their root lookups' misses.
  if (nodes_[kRoot].nkids > kHashMin)
    for (u32 l = 1; l <= std::min(take, 4u); ++l)
      __builtin_prefetch(root_hash_.slots.data() + root_hash_.home(end[-static_cast<ptrdiff_t>(l)]));
  known.assign(size_t{take} + 1, Point{kNil, 0});
  u32 lo = 0, hi = take + 1;  // suffix lo occurs, suffix hi does not (take + 1: sentinel)
  Point pt;
  auto probe = [&](u32 l) {
    if (walk(end - l, l, &pt) != l) return false;
    known[l] = pt;
    return true;
  };
  for (u32 l = 1; l <= take; l = std::min(2 * l, take)) {
    if (!probe(l)) {
      hi = l;
      break;
    }
    lo = l;
    if (l == take) break;
  }
  while (hi - lo > 1) {
    u32 mid = lo + (hi - lo) / 2;
    if (probe(mid)) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return lo;
}

template <class PtOf>
DraftOut SuffixTree::draft_lengths(size_t L, PtOf&& pt_of, const SpecParams& p) const {
  if (p.mode == SpecMode::kPaper) return best_over_lengths(L, pt_of, p, 0);
  // merged, this tree alone: as speculate_both with a matcher and no request tree
  thread_local std::vector<Source> srcs;
  srcs.clear();
  collect_sources_lengths(L, pt_of, 0, p.max_sources, srcs);
  DraftOut out;
  out.match_len = static_cast<int>(L);
  double raw = std::floor(p.max_spec_factor * static_cast<double>(L) + p.max_spec_offset);
  int budget = raw >= p.max_spec_tokens ? p.max_spec_tokens : (raw <= 0 ? 0 : static_cast<int>(raw));
  if (budget > 0 && !srcs.empty()) expand_merged(srcs, budget, p, out);
  return out;
}

DraftOut SuffixTree::speculate(const int32_t* ctx, size_t n, const SpecParams& p) const {
  DraftOut out;
  try_speculate(ctx, n, p, &out, true);
  return out;
}

bool SuffixTree::try_speculate(const int32_t* ctx, size_t n, const SpecParams& p, DraftOut* out,
                               bool wait) const {
  if (p.mode == SpecMode::kMerged && !p.use_tree) throw std::invalid_argument("merged mode drafts trees: use_tree must be true");
  std::shared_lock<std::shared_mutex> lock(mu, std::defer_lock);
  if (wait) lock.lock();
  else if (!lock.try_lock()) return false;
  thread_local std::vector<Point> known;  // points the probes found (node kNil: not probed)
  const u32 L = longest_suffix(ctx, n, known);
  const int32_t* end = ctx + n;
  auto pt_of = [&](size_t l) {
    return known[l].node != kNil ? known[l] : descend(end - l, static_cast<u32>(l));
  };
  *out = draft_lengths(L, pt_of, p);
  return true;
}

DraftOut SuffixTree::speculate_tail(int64_t seq_id, const SpecParams& p) {
  std::unique_lock<std::shared_mutex> lock(mu);
  auto it = slot_of_.find(seq_id);
  if (it == slot_of_.end()) throw std::invalid_argument("unknown sequence id " + std::to_string(seq_id));
  u32 slot = it->second;
  ensure_ring(slot);
  const Seq& S = seqs_[slot];
  u32 n = static_cast<u32>(S.toks.size());
  u32 lo = n >= D_ - 1 ? n - (D_ - 1) : 0;
  u32 b = std::max(S.b, lo);
  std::vector<Point> pts;
  for (u32 j = n; j-- > b;) {  // lengths 1, 2, ... (j = n-1 first)
    u32 v = S.ring[j % D_];
    pts.push_back(Point{v, n - j});
  }
  return best_over(pts, p);
}

// ---------------------------------------------------------------- both trees

void SuffixTree::tail_points(u32 slot, std::vector<Point>& pts) const {
  const Seq& S = seqs_[slot];
  u32 n = static_cast<u32>(S.toks.size());
  u32 lo = n >= D_ - 1 ? n - (D_ - 1) : 0;
  u32 b = std::max(S.b, lo);
  pts.clear();
  for (u32 j = n; j-- > b;) pts.push_back(Point{S.ring[j % D_], n - j});  // lengths 1, 2, ...
}

template <class PtOf>
void SuffixTree::collect_sources_lengths(size_t L, PtOf&& pt_of, u32 minus, int max_sources,
                                         std::vector<Source>& out) const {
  // Longest first; within a run of equal counts every occurrence of the shorter suffix
  // extends to the longer one, so the continuations are the same: keep the run's
  // shortest length, whose subtree is cut later by the depth limit.
  int taken = 0;
  bool open = false;
  u32 run_cnt = 0;
  Source run{this, Point{kRoot, 0}, 0.0, 0};
  auto close = [&]() {
    if (open && run_cnt > minus) {
      run.n_eff = static_cast<double>(run_cnt - minus);
      out.push_back(run);
      ++taken;
    }
    open = false;
  };
  for (size_t l = L; l >= 1 && taken < max_sources; --l) {
    Point q = pt_of(l);
    normalize(q);
    u32 c = nodes_[q.node].cnt;
    if (open && c == run_cnt) {
      run.pt = q;
      run.len = static_cast<int>(l);
      continue;
    }
    close();
    if (taken >= max_sources) break;
    open = true;
    run_cnt = c;
    run.pt = q;
    run.len = static_cast<int>(l);
  }
  if (taken < max_sources) close();
}

void SuffixTree::collect_sources(const std::vector<Point>& pts, u32 minus, int max_sources,
                                 std::vector<Source>& out) const {
  collect_sources_lengths(pts.size(), [&](size_t l) { return pts[l - 1]; }, minus, max_sources, out);
}

namespace {
struct MItem {
  double prob;  // the source's own path probability of this item's path
  double f;     // prob of the item's parent / (parent count + prior): sibling i has f * cnt_i
  u32 src;
  u32 node;     // node holding the item's last token (the kid, or the edge it is on)
  u32 depth;    // depth of the item's last token
  u32 from;     // node whose kid list the item is in (kNil: a step along an edge)
  u32 kid;      // index in that list
  int32_t parent;  // index of the merged parent node, -1 at the top
  int32_t tok;
};
// Heap entries stay small; the item itself waits in an append-only array.
struct HKey {
  double prob;
  u32 idx;  // index in the item array, also the push order (FIFO among equal probs)
  bool operator<(const HKey& o) const {  // max-heap: higher prob first, then FIFO
    if (prob != o.prob) return prob < o.prob;
    return idx > o.idx;
  }
};
struct MergeScratch {
  std::vector<MItem> items;
  std::vector<HKey> heap;
  std::vector<u64> keys;  // (parent + 1) << 32 | tok, ~0 when empty
  std::vector<int32_t> vals;
};
}  // namespace

void SuffixTree::expand_merged(const std::vector<Source>& srcs, int budget, const SpecParams& p,
                               DraftOut& out) {
  // Best-first over (source, path) items. The first item popped for a path (parent
  // node, token) creates the merged node with that item's probability, the max over
  // sources since pops come in non-increasing order; later items for the same path only
  // add their source's continuations below it. Every pushed item has a probability no
  // higher than the item that pushed it, so the output order is non-increasing and the
  // first `budget` distinct paths are the top ones (a child's probability is clamped to
  // its parent's, so rounding cannot break that). Kid lists are sorted by count, so a
  // node's kids enter the heap one at a time: popping kid i pushes kid i + 1.
  thread_local MergeScratch scratch;  // one TLS lookup, then plain references
  std::vector<MItem>& items = scratch.items;
  std::vector<HKey>& heap = scratch.heap;
  std::vector<u64>& keys = scratch.keys;
  std::vector<int32_t>& vals = scratch.vals;
  items.clear();
  heap.clear();
  u32 cap = 64;  // path hash: grows to stay at most half full
  while (cap < 4u * static_cast<u32>(std::min(budget, 1024))) cap <<= 1;
  keys.assign(cap, ~0ull);
  vals.resize(cap);
  const size_t want = static_cast<size_t>(std::min(budget, 4096));
  out.tokens.reserve(want);
  out.parents.reserve(want);
  out.probs.reserve(want);
  u32 mask = cap - 1;
  auto slot_of = [&](u64 key) {
    u32 h = static_cast<u32>((key * 0x9E3779B97F4A7C15ull) >> 32) & mask;
    while (keys[h] != ~0ull && keys[h] != key) h = (h + 1) & mask;
    return h;
  };
  auto grow_hash = [&]() {
    std::vector<u64> old_keys(std::move(keys));
    std::vector<int32_t> old_vals(std::move(vals));
    cap *= 2;
    mask = cap - 1;
    keys.assign(cap, ~0ull);
    vals.resize(cap);
    for (size_t i = 0; i < old_keys.size(); ++i)
      if (old_keys[i] != ~0ull) {
        u32 h = slot_of(old_keys[i]);
        keys[h] = old_keys[i];
        vals[h] = old_vals[i];
      }
  };
  const double a = p.prior, minp = p.min_token_prob;
  auto push = [&](const MItem& it) {
    // its node is read when it is popped: start loading it now
    __builtin_prefetch(&srcs[it.src].tree->nodes_[it.node]);
    heap.push_back(HKey{it.prob, static_cast<u32>(items.size())});
    items.push_back(it);
    std::push_heap(heap.begin(), heap.end());
  };
  // the first continuation of point pt of source s (path probability prob, count den)
  auto push_first = [&](u32 s, Point pt, double prob, double den, int32_t parent) {
    const SuffixTree& T = *srcs[s].tree;
    u32 v = pt.node;
    const Node& X = T.nodes_[v];
    u32 dv = v == kRoot ? 0 : X.pdepth + T.edge_len(v);
    const double f = prob / (den + a);
    if (pt.depth < dv) {
      double q = std::min(prob, f * static_cast<double>(X.cnt));
      if (q >= minp)
        push(MItem{q, f, s, v, pt.depth + 1, kNil, 0, parent, T.label_at(v, pt.depth - X.pdepth)});
      return;
    }
    if (X.nkids == 0) return;
    const Kid& k = T.kids_of(v)[0];
    double q = std::min(prob, f * static_cast<double>(k.cnt));
    if (q >= minp) push(MItem{q, f, s, k.node, pt.depth + 1, v, 0, parent, k.tok});
  };
  for (const Source& s : srcs) {  // overlap the sources' first cache misses
    const Node& X = s.tree->nodes_[s.pt.node];
    __builtin_prefetch(s.tree->pool_.data() + X.kids);
  }
  for (u32 s = 0; s < srcs.size(); ++s) push_first(s, srcs[s].pt, 1.0, srcs[s].n_eff, -1);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end());
    MItem it = items[heap.back().idx];
    heap.pop_back();
    if (!heap.empty()) {  // likely next: load its kid block while this one is handled
      const MItem& nx = items[heap.front().idx];
      const SuffixTree& NT = *srcs[nx.src].tree;
      __builtin_prefetch(NT.pool_.data() + NT.nodes_[nx.node].kids);
    }
    const SuffixTree& T = *srcs[it.src].tree;
    if (it.from != kNil) {  // the next sibling takes this one's place in the heap
      const Node& F = T.nodes_[it.from];
      if (it.kid + 1 < F.nkids) {
        const Kid& k = T.kids_of(it.from)[it.kid + 1];
        double q = std::min(it.prob, it.f * static_cast<double>(k.cnt));
        if (q >= minp) push(MItem{q, it.f, it.src, k.node, it.depth, it.from, it.kid + 1, it.parent, k.tok});
      }
    }
    for (;;) {
      u64 key = (static_cast<u64>(static_cast<u32>(it.parent + 1)) << 32) | static_cast<u32>(it.tok);
      u32 h = slot_of(key);
      int32_t idx;
      if (keys[h] == key) {
        idx = vals[h];
      } else {
        idx = static_cast<int32_t>(out.tokens.size());
        if (2 * (out.tokens.size() + 1) > cap) {
          grow_hash();
          h = slot_of(key);
        }
        keys[h] = key;
        vals[h] = idx;
        out.tokens.push_back(it.tok);
        out.parents.push_back(it.parent);
        out.probs.push_back(it.prob);
        out.score += it.prob;
        if (static_cast<int>(out.tokens.size()) >= budget) return;
      }
      const Node& X = T.nodes_[it.node];
      const double den = static_cast<double>(X.cnt);
      u32 dv = X.pdepth + T.edge_len(it.node);
      if (it.depth < dv) {
        // inside an edge: one continuation; take it at once while it beats the heap
        double f = it.prob / (den + a);
        double q = std::min(it.prob, f * den);
        if (q < minp) break;
        MItem nx{q, f, it.src, it.node, it.depth + 1, kNil, 0, idx, T.label_at(it.node, it.depth - X.pdepth)};
        if (heap.empty() || q > heap.front().prob) {
          it = nx;
          continue;
        }
        push(nx);
        break;
      }
      push_first(it.src, Point{it.node, it.depth}, it.prob, den, idx);
      break;
    }
  }
}

DraftOut speculate_both(Matcher* g, SuffixTree* r, int64_t seq_id, const SpecParams& p) {
  if (g && r && g->tree_ == r) throw std::invalid_argument("the global and the request tree must differ");
  if (p.mode == SpecMode::kMerged && !p.use_tree) throw std::invalid_argument("merged mode drafts trees: use_tree must be true");
  std::unique_lock<std::shared_mutex> rlock;
  u32 slot = 0;
  if (r) {
    rlock = std::unique_lock<std::shared_mutex>(r->mu);
    auto it = r->slot_of_.find(seq_id);
    if (it == r->slot_of_.end()) throw std::invalid_argument("unknown sequence id " + std::to_string(seq_id));
    slot = it->second;
    r->ensure_ring(slot);
  }
  std::shared_lock<std::shared_mutex> glock;
  if (g) {
    glock = std::shared_lock<std::shared_mutex>(g->tree_->mu);
    g->sync();
  }
  if (p.mode == SpecMode::kPaper) {
    // As published: request-tree probabilities count the request's own current
    // occurrence in the denominator (excluding it moved tau by under 0.02 either way).
    DraftOut a, b;
    if (g) a = g->tree_->best_over(g->pts_, p);
    if (r) {
      std::vector<Point> pts;
      r->tail_points(slot, pts);
      b = r->best_over(pts, p);
    }
    if (b.score > a.score || (b.score == a.score && b.match_len > a.match_len && !b.tokens.empty())) return b;
    return a;
  }
  // The request's own current occurrence ends at every tail point: not a continuation.
  const u32 self = 1;
  thread_local std::vector<SuffixTree::Source> srcs;
  srcs.clear();
  size_t L = 0;
  if (g) {
    g->tree_->collect_sources(g->pts_, 0, p.max_sources, srcs);
    L = g->pts_.size();
  }
  if (r) {
    thread_local std::vector<Point> pts;
    r->tail_points(slot, pts);
    r->collect_sources(pts, self, p.max_sources, srcs);
    L = std::max(L, pts.size());
  }
  DraftOut out;
  out.match_len = static_cast<int>(L);
  double raw = std::floor(p.max_spec_factor * static_cast<double>(L) + p.max_spec_offset);
  int budget = raw >= p.max_spec_tokens ? p.max_spec_tokens : (raw <= 0 ? 0 : static_cast<int>(raw));
  if (budget > 0 && !srcs.empty()) SuffixTree::expand_merged(srcs, budget, p, out);
  return out;
}

// ---------------------------------------------------------------- Matcher

Matcher::Matcher(const SuffixTree* tree) : tree_(tree) {
  std::shared_lock<std::shared_mutex> lock(tree_->mu);
  epoch_ = tree_->epoch_;
}

void Matcher::reset() {
  pts_.clear();
  recent_.clear();
}

void Matcher::feed_one(int32_t t) {
  const SuffixTree& T = *tree_;
  thread_local std::vector<Point> nxt;
  nxt.clear();
  Point r{SuffixTree::kRoot, 0};
  if (T.advance(r, t)) {
    nxt.push_back(r);
    for (size_t l = 0; l < pts_.size() && nxt.size() < T.D_ - 1; ++l) {
      Point q = pts_[l];
      T.normalize(q);
      if (!T.advance(q, t)) break;
      nxt.push_back(q);
    }
  }
  pts_.swap(nxt);
}

void Matcher::sync() {
  if (epoch_ == tree_->epoch_) return;
  epoch_ = tree_->epoch_;
  pts_.clear();
  for (int32_t t : recent_) feed_one(t);
}

void Matcher::feed(const int32_t* toks, size_t n) { try_feed(toks, n, true); }

bool Matcher::try_feed(const int32_t* toks, size_t n, bool wait) {
  std::shared_lock<std::shared_mutex> lock(tree_->mu, std::defer_lock);
  if (wait) lock.lock();
  else if (!lock.try_lock()) return false;
  sync();
  size_t keep = tree_->D_ - 1;
  size_t start = n > keep ? n - keep : 0;  // older tokens cannot be part of a match
  if (start > 0) pts_.clear();
  for (size_t i = start; i < n; ++i) {
    feed_one(toks[i]);
    recent_.push_back(toks[i]);
  }
  if (recent_.size() > 2 * keep + 64) recent_.erase(recent_.begin(), recent_.end() - keep);
  return true;
}

int Matcher::match_len() {
  std::shared_lock<std::shared_mutex> lock(tree_->mu);
  sync();
  return static_cast<int>(pts_.size());
}

DraftOut Matcher::speculate(const SpecParams& p) {
  DraftOut out;
  try_speculate(p, &out, true);
  return out;
}

bool Matcher::try_speculate(const SpecParams& p, DraftOut* out, bool wait) {
  if (p.mode == SpecMode::kMerged && !p.use_tree) throw std::invalid_argument("merged mode drafts trees: use_tree must be true");
  std::shared_lock<std::shared_mutex> lock(tree_->mu, std::defer_lock);
  if (wait) lock.lock();
  else if (!lock.try_lock()) return false;
  sync();
  *out = tree_->draft_lengths(pts_.size(), [&](size_t l) { return pts_[l - 1]; }, p);
  return true;
}

// ---------------------------------------------------------------- introspection

u64 SuffixTree::count(const int32_t* prefix, size_t n) const {
  std::shared_lock<std::shared_mutex> lock(mu);
  bool ok;
  Point p = locate(prefix, n, &ok);
  if (!ok) return 0;
  return nodes_[p.node].cnt;
}

std::vector<std::pair<int32_t, u64>> SuffixTree::top_continuations(const int32_t* prefix, size_t n,
                                                                   int k) const {
  std::shared_lock<std::shared_mutex> lock(mu);
  std::vector<std::pair<int32_t, u64>> out;
  bool ok;
  Point p = locate(prefix, n, &ok);
  if (!ok || k <= 0) return out;
  u32 v = p.node;
  u32 dv = v == kRoot ? 0 : depth_of(v);
  if (p.depth < dv) {
    out.emplace_back(label_at(v, p.depth - nodes_[v].pdepth), nodes_[v].cnt);
    return out;
  }
  const Kid* kk = kids_of(v);
  for (u32 i = 0; i < nodes_[v].nkids && static_cast<int>(out.size()) < k; ++i)
    out.emplace_back(kk[i].tok, kk[i].cnt);
  return out;
}

std::vector<std::tuple<int32_t, int32_t, u64>> SuffixTree::continuations(const int32_t* prefix,
                                                                         size_t n, int max_depth,
                                                                         int top_k) const {
  std::shared_lock<std::shared_mutex> lock(mu);
  std::vector<std::tuple<int32_t, int32_t, u64>> out;
  bool ok;
  Point p = locate(prefix, n, &ok);
  if (!ok || max_depth <= 0 || top_k <= 0) return out;
  const size_t kCap = 200000;
  struct Frame {
    Point pt;
    int32_t parent;
    int level;
  };
  std::vector<Frame> stack{{p, -1, 0}};
  while (!stack.empty() && out.size() < kCap) {
    Frame f = stack.back();
    stack.pop_back();
    if (f.level >= max_depth) continue;
    u32 v = f.pt.node;
    u32 dv = v == kRoot ? 0 : depth_of(v);
    std::vector<Frame> kids;
    if (f.pt.depth < dv) {
      int32_t idx = static_cast<int32_t>(out.size());
      out.emplace_back(f.parent, label_at(v, f.pt.depth - nodes_[v].pdepth), nodes_[v].cnt);
      kids.push_back({Point{v, f.pt.depth + 1}, idx, f.level + 1});
    } else {
      const Kid* kk = kids_of(v);
      for (u32 i = 0; i < nodes_[v].nkids && static_cast<int>(i) < top_k; ++i) {
        int32_t idx = static_cast<int32_t>(out.size());
        out.emplace_back(f.parent, kk[i].tok, kk[i].cnt);
        kids.push_back({Point{kk[i].node, f.pt.depth + 1}, idx, f.level + 1});
      }
    }
    for (size_t i = kids.size(); i-- > 0;) stack.push_back(kids[i]);
  }
  return out;
}

}  // namespace sufdec

// ---------------------------------------------------------------- persistence
//
// Format (little-endian, version 1):
//   "SUFDTREE" | u32 version | u32 max_depth | u64 payload_len | u64 checksum(payload)
//   payload: u64 n_nodes | u32 free_head | u64 live_nodes | Node[n_nodes]
//            u64 pool_len | Kid[pool_len]              (compacted child blocks)
//            u64 n_slots | i64 ids[] | u8 alive[] | u64 lens[] | i32 tokens[sum lens]
//            u64 n_dmap | (u32 node, u32 slot, u32 pos)[n_dmap]

namespace sufdec {
namespace {

constexpr char kMagic[8] = {'S', 'U', 'F', 'D', 'T', 'R', 'E', 'E'};
constexpr u32 kVersion = 1;
constexpr size_t kHeader = 8 + 4 + 4 + 8 + 8;

u64 checksum(const char* p, size_t n) {
  u64 h = 0x243F6A8885A308D3ull ^ n;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    u64 w;
    std::memcpy(&w, p + i, 8);
    h = (h ^ w) * 0x9E3779B97F4A7C15ull;
    h ^= h >> 29;
  }
  for (; i < n; ++i) h = (h ^ static_cast<unsigned char>(p[i])) * 0x100000001B3ull;
  return h ^ (h >> 32);
}

struct Writer {
  std::string& s;
  template <class T>
  void put(const T& v) {
    s.append(reinterpret_cast<const char*>(&v), sizeof(T));
  }
  void raw(const void* p, size_t n) { s.append(static_cast<const char*>(p), n); }
};

struct Reader {
  const char* p;
  size_t n;
  size_t at = 0;
  template <class T>
  T get() {
    if (n - at < sizeof(T)) throw std::invalid_argument("truncated suffix tree buffer");
    T v;
    std::memcpy(&v, p + at, sizeof(T));
    at += sizeof(T);
    return v;
  }
  void raw(void* dst, u64 count, size_t elem) {
    if (elem && count > (n - at) / elem) throw std::invalid_argument("truncated suffix tree buffer");
    if (count) std::memcpy(dst, p + at, count * elem);
    at += count * elem;
  }
};

}  // namespace

std::string SuffixTree::serialize() const {
  std::shared_lock<std::shared_mutex> lock(mu);
  std::string out;
  u64 tok_total = 0;
  for (const auto& S : seqs_) tok_total += S.toks.size();
  out.reserve(kHeader + 64 + nodes_.size() * sizeof(Node) + live_nodes_ * sizeof(Kid) * 2 +
              tok_total * 4 + seqs_.size() * 17);
  out.resize(kHeader);
  Writer w{out};
  // nodes with compacted child offsets
  std::vector<Node> nodes(nodes_.begin(), nodes_.end());
  u64 off = 0;
  for (auto& x : nodes) {
    if (x.ref_slot == kFreeMark || x.nkids == 0) {
      if (x.ref_slot != kFreeMark) x.kids = 0;
      continue;
    }
    x.kids = static_cast<u32>(off);
    off += bit_ceil32(x.nkids);
  }
  w.put<u64>(nodes.size());
  w.put<u32>(free_nodes_);
  w.put<u64>(live_nodes_);
  w.raw(nodes.data(), nodes.size() * sizeof(Node));
  w.put<u64>(off);
  size_t pool_at = out.size();
  out.resize(pool_at + off * sizeof(Kid));
  char* dst = &out[pool_at];
  for (size_t v = 0; v < nodes_.size(); ++v) {
    const Node& x = nodes_[v];
    if (x.ref_slot == kFreeMark || x.nkids == 0) continue;
    size_t cap = bit_ceil32(x.nkids);
    std::memset(dst, 0, cap * sizeof(Kid));
    std::memcpy(dst, pool_.data() + x.kids, x.nkids * sizeof(Kid));
    dst += cap * sizeof(Kid);
  }
  w.put<u64>(seqs_.size());
  for (const auto& S : seqs_) w.put<int64_t>(S.alive ? S.id : 0);
  for (const auto& S : seqs_) w.put<uint8_t>(S.alive ? 1 : 0);
  for (const auto& S : seqs_) w.put<u64>(S.alive ? S.toks.size() : 0);
  for (const auto& S : seqs_)
    if (S.alive) w.raw(S.toks.data(), S.toks.size() * sizeof(int32_t));
  u64 nd = 0;
  for (const auto& kv : dmap_) nd += kv.second.size();
  w.put<u64>(nd);
  std::vector<std::tuple<u32, u32, u32>> dm;
  dm.reserve(nd);
  for (const auto& kv : dmap_)
    for (u64 e : kv.second) dm.emplace_back(kv.first, static_cast<u32>(e >> 32), static_cast<u32>(e));
  std::sort(dm.begin(), dm.end());
  for (auto& [a, b, c] : dm) {
    w.put<u32>(a);
    w.put<u32>(b);
    w.put<u32>(c);
  }
  // header
  u64 payload = out.size() - kHeader;
  u64 sum = checksum(out.data() + kHeader, payload);
  char* h = &out[0];
  std::memcpy(h, kMagic, 8);
  std::memcpy(h + 8, &kVersion, 4);
  std::memcpy(h + 12, &D_, 4);
  std::memcpy(h + 16, &payload, 8);
  std::memcpy(h + 24, &sum, 8);
  return out;
}

std::unique_ptr<SuffixTree> SuffixTree::load(const char* data, size_t n) {
  if (n < kHeader) throw std::invalid_argument("suffix tree buffer too short");
  if (std::memcmp(data, kMagic, 8) != 0) throw std::invalid_argument("not a sufdec suffix tree (bad magic)");
  u32 version, D;
  u64 payload, sum;
  std::memcpy(&version, data + 8, 4);
  std::memcpy(&D, data + 12, 4);
  std::memcpy(&payload, data + 16, 8);
  std::memcpy(&sum, data + 24, 8);
  if (version != kVersion)
    throw std::invalid_argument("unsupported suffix tree format version " + std::to_string(version));
  if (D < 1 || D > kMaxDepthLimit) throw std::invalid_argument("bad max_depth in suffix tree buffer");
  if (payload != n - kHeader) throw std::invalid_argument("truncated or oversized suffix tree buffer");
  if (checksum(data + kHeader, payload) != sum) throw std::invalid_argument("suffix tree buffer checksum mismatch");
  auto t = std::make_unique<SuffixTree>(static_cast<int>(D));
  Reader r{data + kHeader, payload};
  u64 nn = r.get<u64>();
  if (nn < 1 || nn >= kFreeMark || nn > payload / sizeof(Node)) throw std::invalid_argument("bad node count");
  t->free_nodes_ = r.get<u32>();
  t->live_nodes_ = r.get<u64>();
  t->nodes_.resize(nn);
  r.raw(t->nodes_.data(), nn, sizeof(Node));
  u64 np = r.get<u64>();
  if (np >= kFreeMark || np > payload / sizeof(Kid)) throw std::invalid_argument("bad child pool size");
  t->pool_.resize(np);
  r.raw(t->pool_.data(), np, sizeof(Kid));
  u64 ns = r.get<u64>();
  if (ns >= kFreeMark || ns > payload / 17) throw std::invalid_argument("bad sequence count");
  t->seqs_.resize(ns);
  t->slen_.assign(ns, 0);
  for (auto& S : t->seqs_) S.id = r.get<int64_t>();
  for (auto& S : t->seqs_) {
    uint8_t a = r.get<uint8_t>();
    if (a > 1) throw std::invalid_argument("bad sequence flag");
    S.alive = a == 1;
  }
  std::vector<u64> lens(ns);
  r.raw(lens.data(), ns, sizeof(u64));
  for (u64 i = 0; i < ns; ++i) {
    auto& S = t->seqs_[i];
    if (!S.alive && lens[i] != 0) throw std::invalid_argument("dead sequence with tokens");
    if (lens[i] > (payload - r.at) / 4 || lens[i] >= 0xFFFFFFF0u) throw std::invalid_argument("truncated suffix tree buffer");
    S.toks.resize(lens[i]);
    t->slen_[i] = static_cast<u32>(lens[i]);
    r.raw(S.toks.data(), lens[i], sizeof(int32_t));
    for (int32_t tk : S.toks)
      if (tk < 0) throw std::invalid_argument("negative token in suffix tree buffer");
    if (S.alive) {
      if (!t->slot_of_.emplace(S.id, static_cast<u32>(i)).second)
        throw std::invalid_argument("duplicate sequence id in suffix tree buffer");
      t->num_tokens_ += lens[i];
    } else {
      t->free_slots_.push_back(static_cast<u32>(i));
    }
  }
  std::reverse(t->free_slots_.begin(), t->free_slots_.end());
  u64 nd = r.get<u64>();
  if (nd > (payload - r.at) / 12) throw std::invalid_argument("truncated suffix tree buffer");
  for (u64 i = 0; i < nd; ++i) {
    u32 a = r.get<u32>(), b = r.get<u32>(), c = r.get<u32>();
    t->dmap_[a].push_back(pack(b, c));
  }
  if (r.at != payload) throw std::invalid_argument("trailing bytes in suffix tree buffer");
  std::string err = t->validate_structure();
  if (!err.empty()) throw std::invalid_argument("corrupt suffix tree buffer: " + err);
  return t;
}

// Structural validation: everything later code indexes with is in range, the tree is a
// tree (each live node is exactly one kid, depth strictly grows along edges), kid
// mirrors match, blocks are sorted and tokens unique per node. Builds the hashes.
std::string SuffixTree::validate_structure() const {
  const u64 N = nodes_.size();
  const u64 P = pool_.size();
  const u64 S = seqs_.size();
  const Node& R = nodes_[kRoot];
  if (R.ref_slot != kNil || R.parent != kNil || R.pdepth != 0 || R.len != 0) return "bad root";
  // free list
  u64 nfree = 0;
  for (u32 v = free_nodes_; v != kNil; v = nodes_[v].parent) {
    if (v >= N || v == kRoot || nodes_[v].ref_slot != kFreeMark) return "bad free list";
    if (++nfree > N) return "cycle in free list";
  }
  u64 marked = 0;
  for (u64 v = 0; v < N; ++v) marked += nodes_[v].ref_slot == kFreeMark;
  if (marked != nfree || live_nodes_ != N - nfree) return "free node count mismatch";
  // refs and edge lengths
  for (u64 v = 1; v < N; ++v) {
    const Node& x = nodes_[v];
    if (x.ref_slot == kFreeMark) continue;
    if (x.ref_slot >= S || !seqs_[x.ref_slot].alive) return "node " + std::to_string(v) + ": bad ref sequence";
    u64 L = seqs_[x.ref_slot].toks.size();
    if (x.ref_start < x.pdepth || x.ref_start > L) return "node " + std::to_string(v) + ": bad ref start";
    if (x.cnt == 0) return "node " + std::to_string(v) + ": zero count";
    if (x.pdepth >= D_) return "node " + std::to_string(v) + ": too deep";
    if (x.cnt == 1 && x.nkids == 0) {
      if (x.ref_start == L) return "node " + std::to_string(v) + ": empty open leaf";
    } else {
      if (x.len == 0 || u64{x.pdepth} + x.len > D_ || u64{x.ref_start} + x.len > L)
        return "node " + std::to_string(v) + ": bad edge length";
    }
    if (x.nkids > N || (x.nkids && u64{x.kids} + bit_ceil32(x.nkids) > P)) return "node " + std::to_string(v) + ": bad child block";
  }
  if (R.nkids > N || (R.nkids && u64{R.kids} + bit_ceil32(R.nkids) > P)) return "root: bad child block";
  // kids
  std::vector<uint8_t> seen(N, 0);
  u64 total = 0;
  std::vector<int32_t> toks;
  for (u64 v = 0; v < N; ++v) {
    const Node& x = nodes_[v];
    if (x.ref_slot == kFreeMark || x.nkids == 0) continue;
    u64 dv = v == kRoot ? 0 : depth_of(static_cast<u32>(v));
    const Kid* k = pool_.data() + x.kids;
    u64 sum = 0;
    toks.clear();
    for (u32 i = 0; i < x.nkids; ++i) {
      u32 c = k[i].node;
      if (c >= N || c == kRoot || nodes_[c].ref_slot == kFreeMark) return "node " + std::to_string(v) + ": bad kid";
      if (seen[c]) return "node " + std::to_string(c) + " is a kid twice";
      seen[c] = 1;
      const Node& y = nodes_[c];
      if (y.parent != v) return "node " + std::to_string(c) + ": parent mismatch";
      if (y.pdepth != dv) return "node " + std::to_string(c) + ": depth mismatch";
      if (k[i].cnt != y.cnt) return "node " + std::to_string(c) + ": count mirror mismatch";
      if (i && k[i].cnt > k[i - 1].cnt) return "node " + std::to_string(v) + ": kids not sorted";
      if (seqs_[y.ref_slot].toks[y.ref_start] != k[i].tok) return "node " + std::to_string(c) + ": token mismatch";
      sum += y.cnt;
      toks.push_back(k[i].tok);
    }
    std::sort(toks.begin(), toks.end());
    if (std::adjacent_find(toks.begin(), toks.end()) != toks.end()) return "node " + std::to_string(v) + ": duplicate kid token";
    if (v == kRoot ? sum != x.cnt : sum > x.cnt) return "node " + std::to_string(v) + ": count below kids' sum";
    total += x.nkids;
  }
  if (total != live_nodes_ - 1) return "orphan nodes";
  if (R.cnt != num_tokens_) return "root count != number of tokens";
  for (const auto& kv : dmap_) {
    if (kv.first >= N || kv.first == kRoot || nodes_[kv.first].ref_slot == kFreeMark) return "bad witness node";
    for (u64 e : kv.second) {
      u32 s = static_cast<u32>(e >> 32), pos = static_cast<u32>(e);
      if (s >= S || !seqs_[s].alive || u64{pos} + D_ > seqs_[s].toks.size()) return "bad witness";
    }
  }
  const_cast<SuffixTree*>(this)->rebuild_hashes();
  return "";
}

void SuffixTree::rebuild_hashes() {
  hashes_.clear();
  root_hash_ = FlatHash{};
  for (u32 v = 0; v < nodes_.size(); ++v) {
    const Node& x = nodes_[v];
    if (x.ref_slot == kFreeMark || x.nkids <= kHashMin) continue;
    FlatHash& h = hash_make(v);
    h.init(x.nkids);
    const Kid* k = kids_of(v);
    for (u32 i = 0; i < x.nkids; ++i) h.insert(k[i].tok, i);
  }
}

// Full semantic check: every window of every sequence is a path ending at an explicit
// node, each node's count equals the windows ending there plus its kids' counts, the
// shape is canonical, refs are real occurrences, rings and witnesses are right.
std::string SuffixTree::check_integrity() const {
  std::unique_lock<std::shared_mutex> lock(mu);  // validate_structure rebuilds hashes
  std::string err = validate_structure();
  if (!err.empty()) return err;
  const u64 N = nodes_.size();
  std::vector<u32> ends(N, 0);
  std::unordered_map<u32, u64> dcount;
  for (u32 s = 0; s < seqs_.size(); ++s) {
    const Seq& S = seqs_[s];
    if (!S.alive) continue;
    u32 n = static_cast<u32>(S.toks.size());
    for (u32 j = 0; j < n; ++j) {
      u32 len = std::min(n - j, D_);
      u32 x = kRoot, d = 0;
      while (d < len) {
        u32 idx = find_kid(x, S.toks[j + d]);
        if (idx == kNil) return "window (" + std::to_string(S.id) + ", " + std::to_string(j) + ") missing";
        x = kids_of(x)[idx].node;
        u32 L = edge_len(x);
        for (u32 k = 0; k < L; ++k)
          if (d + k >= len || label_at(x, k) != S.toks[j + d + k])
            return "window (" + std::to_string(S.id) + ", " + std::to_string(j) + ") diverges at node " + std::to_string(x);
        d += L;
      }
      ends[x]++;
      if (len == D_ && !is_open(nodes_[x])) {
        auto it = dmap_.find(x);
        bool found = false;
        if (it != dmap_.end())
          for (u64 e : it->second) found |= e == pack(s, j);
        if (!found) return "missing witness for node " + std::to_string(x);
        dcount[x]++;
      }
      bool tail = j + D_ > n;
      if (tail && S.ring_ok) {
        if (j >= S.b && S.ring[j % D_] != x) return "stale ring entry";
        if (j < S.b && !is_open(nodes_[x])) return "ring boundary wrong";
      }
    }
  }
  for (const auto& kv : dmap_)
    if (dcount[kv.first] != kv.second.size()) return "extra witnesses for node " + std::to_string(kv.first);
  for (u32 v = 1; v < N; ++v) {
    const Node& x = nodes_[v];
    if (x.ref_slot == kFreeMark) continue;
    u64 sum = ends[v];
    const Kid* k = kids_of(v);
    for (u32 i = 0; i < x.nkids; ++i) sum += k[i].cnt;
    if (sum != x.cnt) return "node " + std::to_string(v) + ": count " + std::to_string(x.cnt) + " != ends + kids " + std::to_string(sum);
    if (x.nkids == 1 && ends[v] == 0) return "node " + std::to_string(v) + ": unary node without ends (not canonical)";
    // occurrence alignment: the ref sequence holds the whole path before the label
    std::vector<int32_t> path = path_of(v);
    const auto& t = seqs_[x.ref_slot].toks;
    u32 p0 = x.ref_start - x.pdepth;
    if (u64{p0} + path.size() > t.size() || !std::equal(path.begin(), path.end(), t.begin() + p0))
      return "node " + std::to_string(v) + ": ref is not an occurrence";
  }
  return "";
}

}  // namespace sufdec
