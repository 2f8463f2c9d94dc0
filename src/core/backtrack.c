/*
 * backtrack.c — the backtracking encoder for long pieces of byte-level models: the idea of
 * github/rust-gems `bpe` (encode_via_backtracking), written for tokd's tables.
 *
 * The heap merger (bpe.c) costs O(n log n) with a cache miss per heap level; on a piece of
 * megabytes (a run of one character, base64, a text without pre-tokenizer) it slows down as
 * the piece grows. The backtracker instead walks the piece once: at each position it takes
 * the longest token that starts there and checks that the token may follow the previous
 * one — that byte-pair encoding, run on the two tokens' bytes alone, would not merge across
 * their boundary differently. If no prefix of the candidate may follow, the previous token
 * is taken back and that end position is marked as a dead end. Each position is marked at
 * most once, so the walk is linear in the piece times the token length.
 *
 * Why it is exact: inside a piece, two adjacent parts that exactly cover a token T's bytes
 * can only be the two parts the merge loop leaves when it runs on T's bytes alone (the
 * merges inside T's span happen in the same order as in isolation until one crosses its
 * edge), so a token's "split" is the last merge of encoding its own bytes, and a token that
 * encoding its bytes does not produce ("unreachable") never comes out of a merge. With
 * every token ranked by the priority of its split (tiktoken: its rank; Hugging Face: the
 * merge's index, after the single bytes), a sequence of tokens is the merge loop's result
 * iff each adjacent pair is valid (rust-gems' is_valid_token_pair, which unwinds the two
 * tokens' splits and asks whether a merge across the boundary would have come first).
 * That argument needs every single byte to be a token (checked; else the model keeps the
 * heap merger) and every split to join tokens of lower rank. A merge list may break the
 * second for a few tokens ("outliers": Llama 3 has 82, merges listed before the merge that
 * makes one of their parts); they and the tokens built on them are left out of the tables,
 * and a piece that contains an outlier's bytes — the only pieces they can come out of — is
 * declined and goes to the heap merger. tests/check_bpe.c compares the two mergers on long
 * pieces and on every token in context, for every byte-level vocabulary.
 *
 * Finding the longest token at a position is a walk down a trie of the reachable tokens,
 * two bytes per step, one word per step in an open-addressing table (trie_build), and
 * the pair check goes through a memo shared by all threads (valid_pair_memo): those two
 * were 45% and 20% of the time on CJK and Cyrillic text with hash probes per candidate
 * length and a small per-thread memo. A walk that looked at eight bytes or more is
 * remembered (match_at): in repeated text (a run of dashes, spaces or one letter) the
 * next position starts with the same bytes, and a comparison replaces the walk — on a
 * run of 64-byte tokens a position can be walked from again and again as the encoder
 * backs up, which made 100 KB of '-' cost 25 probes a byte.
 *
 * The tables take 25-500 ms to build for 50-200k tokens and 4.5-17 MB, so the built-in
 * vocabularies bring theirs built (see "Images" below); a Hugging Face model's are built
 * by tok_registry_warm (the server before it is ready, the command line for large inputs)
 * or read from the table cache, and by the first piece of TOK__BT_BUILD_PIECE bytes or
 * more (where the heap merger would cost more than building). Until then pieces take the
 * scan or the heap merger, with the same result.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/image.h"
#include "core/internal.h"

#define BT_MAX_OUTLIERS 255

struct tok__bt {
  uint32_t outlier[BT_MAX_OUTLIERS]; /* ids of tokens left out (see bt_build), sorted by
                                        their first two bytes */
  uint32_t n_outliers;
  uint8_t *outlier_at;               /* 65,536 (when there are outliers): by two bytes, the
                                        index + 1 of the first outlier starting with them */
  /* filters in front of it, 65,536 bits each, so that a position of a piece costs a bit
   * test or two: by a hash of the first four bytes of the outliers of four bytes or more,
   * by the first two of the shorter ones (NULL when there are none) */
  uint64_t *outlier_bits4, *outlier_bits2;
  uint64_t outlier_first[4]; /* the bytes outliers start with (none starts with most bytes, a
                                continuation byte, for one): one test skips a position */
  uint64_t outlier_run[4];   /* the bytes c whose run c c c c neither filter flags: inside a
                                run of c, five positions cost one 8-byte compare */
  /* valid_pair's memo, shared by the threads (see valid_pair_memo) */
  _Atomic uint64_t *memo;
  uint32_t n_ranks;
  uint32_t *id_of;      /* rank -> token id */
  uint32_t *rank_of;    /* token id -> rank, TOK__NONE when never produced by a merge */
  uint16_t *len;        /* rank -> bytes */
  uint32_t *left, *right; /* rank -> ranks of its split (itself for single bytes) */
  uint32_t *prefix;     /* rank -> longest reachable proper prefix's rank, or TOK__NONE */
  /* The reachable tokens as a trie walked two bytes per step (see longest_match):
   * root[b0 << 8 | b1] is the rank of the longest token among b0 and b0 b1, with
   * TRIE_DEEPER set when a longer token starts with b0 b1; the steps are in one open-
   * addressing table, a word a slot (see "The trie" below). */
  uint32_t *root;
  uint64_t *trie;
  uint32_t trie_mask;
  uint32_t byte_rank[256];
  /* the splits by their parts, open addressing, one word a slot: (left + 1) << 42 |
   * right << 21 | joined (ranks below 2^21), 0 = empty */
  uint64_t *pairs;
  uint32_t pair_mask;
  bool in_image; /* the arrays point into an image (see "Images" below): not freed */
  void *map;     /* ... of a cache file copied here (munmap'd when freed), or NULL */
  size_t map_len;
};

#define RANK_BITS 21
#define RANK_MASK ((1u << RANK_BITS) - 1)
#define MEMO_BITS 17 /* valid_pair_memo: sets of two entries */

static inline uint32_t pair_slot(uint64_t key, uint32_t mask)
{
  return (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 40) & mask;
}

static uint32_t pair_get(const tok__bt *bt, uint32_t l, uint32_t r)
{
  uint64_t key = ((uint64_t)l + 1) << RANK_BITS | r;
  for (uint32_t i = pair_slot(key, bt->pair_mask);; i = (i + 1) & bt->pair_mask) {
    uint64_t e = bt->pairs[i];
    if (e >> RANK_BITS == key) return (uint32_t)e & RANK_MASK;
    if (e == 0) return TOK__NONE;
  }
}

static void pair_put(tok__bt *bt, uint32_t l, uint32_t r, uint32_t v)
{
  uint64_t key = ((uint64_t)l + 1) << RANK_BITS | r;
  uint32_t i = pair_slot(key, bt->pair_mask);
  while (bt->pairs[i]) i = (i + 1) & bt->pair_mask;
  bt->pairs[i] = key << RANK_BITS | v;
}

void tok__bt_free(tok__bt *bt)
{
  if (!bt) return;
  if (bt->in_image) {
    tok__table_free((void *)bt->memo);
    if (bt->map) munmap(bt->map, bt->map_len);
    free(bt);
    return;
  }
  free(bt->id_of), free(bt->rank_of), free(bt->len), free(bt->left), free(bt->right);
  free(bt->prefix), free(bt->root), free(bt->outlier_at);
  tok__table_free(bt->trie), tok__table_free(bt->pairs);
  free(bt->outlier_bits4), free(bt->outlier_bits2);
  tok__table_free((void *)bt->memo);
  free(bt);
}

static inline uint32_t outlier_hash4(const uint8_t *p)
{
  return ((uint32_t)tok__load32(p) * 0x9E3779B1u) >> 16;
}

/* An outlier's first two bytes (outliers are merged tokens: two bytes at least). */
static uint32_t outlier_key(const tok__model *m, uint32_t id)
{
  const uint8_t *p = m->bytes + m->off[id];
  return (uint32_t)p[0] << 8 | p[1];
}

/* The merge loop on a token's own bytes (at most 65,535), keeping the last merge: sets
 * *split to the left part's length and returns the id it ends with when that is one part,
 * else TOK__NONE. Quadratic, but tokens are short. */
static uint32_t own_split(const tok__model *m, const uint8_t *p, uint32_t n, uint32_t *starts,
                          uint32_t *ids, uint32_t *split)
{
  uint32_t k = n;
  for (uint32_t i = 0; i < n; i++) starts[i] = i, ids[i] = m->byte_id[p[i]];
  starts[n] = n;
  *split = 0;
  while (k > 1) {
    uint32_t best = TOK__NONE, at = 0;
    for (uint32_t i = 0; i + 1 < k; i++) {
      uint32_t pr = tok__merge_prio(m, p + starts[i], starts[i + 1] - starts[i], starts[i + 2] - starts[i]);
      if (pr < best) best = pr, at = i;
    }
    if (best == TOK__NONE) return TOK__NONE;
    if (k == 2) *split = starts[1];
    ids[at] = tok__merge_result(m, best);
    for (uint32_t i = at + 1; i < k; i++) starts[i] = starts[i + 1], ids[i] = ids[i + 1];
    k--;
  }
  return ids[0];
}

/* ---------------------------------------------------------------------------------------
 * The trie. A node is a prefix of an even number of bytes of some reachable token: the
 * prefixes of two bytes are nodes 0..65535 (b0 << 8 | b1), a longer one is 65536 + the
 * index of the slot of the step that leads to it (slots never move once built). A step
 * from node N over bytes b1 b2 has the key N << 16 | b1 << 8 | b2; a token of odd length
 * that ends one byte past N has the key TRIE_ODD | N << 16 | b1 << 8. A slot holds
 *   bit 63: used | bit 62: the rank ends at the step's first byte | key << 22 |
 *   bit 21: the node it leads to has steps or odd ends |
 *   the rank of the longest token the step ends (at two bytes, else at one), or RANK_MASK
 * so a walk reads one word per two bytes of the match, and hash(key) is one multiply.
 */
#define TRIE_USED (1ull << 63)
#define TRIE_ODD (1ull << 39)
#define TRIE_KIDS (1ull << 21)
#define TRIE_AT1 (1ull << 62) /* the slot's rank ends one byte into the step */
#define TRIE_DEEPER (1u << 31)
#define TRIE_TWO (1u << 30)     /* root: the rank is of the two bytes, not the first */

#define TRIE_MAX_SLOTS (1u << 22) /* node ids below 2^23: keys fit 40 bits */
#define TRIE_KEY(e) ((e) & ~(TRIE_AT1 | ((1ull << 22) - 1))) /* used bit and key of a slot */

static inline uint32_t trie_home(uint64_t key, uint32_t mask)
{
  return (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 40) & mask;
}

/* The slot of key, or UINT32_MAX. */
static inline uint32_t trie_find(const tok__bt *bt, uint64_t key)
{
  uint64_t want = TRIE_USED | key << 22;
  for (uint32_t i = trie_home(key, bt->trie_mask);; i = (i + 1) & bt->trie_mask) {
    uint64_t e = bt->trie[i];
    if (TRIE_KEY(e) == want) return i;
    if (e == 0) return UINT32_MAX;
  }
}

/* The slot of key, added (with no rank; counted in *used) when absent. */
static uint32_t trie_add(tok__bt *bt, uint64_t key, size_t *used)
{
  uint32_t i = trie_home(key, bt->trie_mask);
  uint64_t want = TRIE_USED | key << 22;
  for (; bt->trie[i]; i = (i + 1) & bt->trie_mask)
    if (TRIE_KEY(bt->trie[i]) == want) return i;
  bt->trie[i] = want | RANK_MASK;
  ++*used;
  return i;
}

/* Fills the trie (empty, trie_mask set) with the ranks that have a token (id_of); node[r]
 * walks down each token, two bytes per round. Returns the number of slots used. */
static size_t trie_fill(const tok__model *m, tok__bt *bt, uint32_t *node)
{
  size_t used = 0;
  for (uint32_t i = 0; i < 65536; i++) bt->root[i] = bt->byte_rank[i >> 8];
  for (uint32_t r = 0; r < bt->n_ranks; r++) {
    uint32_t id = bt->id_of[r];
    if (id == TOK__NONE || bt->len[r] < 2) continue;
    const uint8_t *t = m->bytes + m->off[id];
    node[r] = (uint32_t)t[0] << 8 | t[1];
    if (bt->len[r] == 2) bt->root[node[r]] = (bt->root[node[r]] & TRIE_DEEPER) | TRIE_TWO | r;
    else bt->root[node[r]] |= TRIE_DEEPER;
  }
  /* depth by depth, so that a node's slot exists before its steps are keyed on it */
  for (uint32_t d = 2; d < m->max_len; d += 2)
    for (uint32_t r = 0; r < bt->n_ranks; r++) {
      uint32_t id = bt->id_of[r], len = bt->len[r];
      if (id == TOK__NONE || len <= d) continue;
      const uint8_t *t = m->bytes + m->off[id];
      uint64_t at = (uint64_t)node[r] << 16 | (uint32_t)t[d] << 8;
      uint32_t i;
      if (len == d + 1) { /* ends one byte past the node */
        i = trie_add(bt, TRIE_ODD | at, &used);
        bt->trie[i] = (bt->trie[i] & ~(uint64_t)RANK_MASK) | r;
      } else {
        i = trie_add(bt, at | t[d + 1], &used);
        if (len == d + 2) bt->trie[i] = (bt->trie[i] & ~(TRIE_AT1 | RANK_MASK)) | r;
        else if ((bt->trie[i] & RANK_MASK) == RANK_MASK) {
          /* the step's rank: the token of d + 2 bytes if any (set by its own round), else
           * of d + 1 */
          uint32_t t1 = tok__token_lookup(m, t, d + 1);
          if (t1 != TOK__NONE && bt->rank_of[t1] != TOK__NONE)
            bt->trie[i] = (bt->trie[i] & ~(uint64_t)RANK_MASK) | TRIE_AT1 | bt->rank_of[t1];
        }
      }
      if (d > 2) bt->trie[node[r] - 65536] |= TRIE_KIDS;
      node[r] = 65536 + i;
    }
  return used;
}

/* Builds the trie at most half full: filled once in a table sized for every prefix of
 * every token, then again in one sized for the distinct ones (half of that, or less: the
 * node ids are slot numbers, so the table cannot be shrunk in place). False when out of
 * memory or too large. */
static bool trie_build(const tok__model *m, tok__bt *bt)
{
  size_t n_keys = 0;
  for (uint32_t r = 0; r < bt->n_ranks; r++)
    if (bt->id_of[r] != TOK__NONE && bt->len[r] >= 3) n_keys += (bt->len[r] - 1) / 2;
  uint32_t *node = malloc((size_t)bt->n_ranks * sizeof *node);
  if (!node) return false;
  for (int pass = 0; pass < 2; pass++) {
    uint32_t cap = 1024;
    while (cap < 2 * n_keys) cap *= 2; /* at most half full (measured: 59% full is 5-9% slower) */
    if (pass == 1 && cap == bt->trie_mask + 1) break; /* already the right size */
    tok__table_free(bt->trie);
    bt->trie = NULL;
    if (cap > TRIE_MAX_SLOTS || !(bt->trie = tok__table_calloc(cap, sizeof *bt->trie))) {
      free(node);
      return false;
    }
    bt->trie_mask = cap - 1;
    n_keys = trie_fill(m, bt, node);
  }
  free(node);
  return true;
}

/* Builds the tables, or returns NULL when the model does not allow the backtracker (or
 * memory ran out: the heap merger is always there). */
static tok__bt *bt_build(const tok__model *m)
{
  if (!m->byte_level || m->id_end == 0) return NULL;
  for (int c = 0; c < 256; c++)
    if (m->byte_id[c] == TOK__NONE) return NULL;
  uint32_t n_ids = m->id_end;
  /* ranks: single bytes first (0..255), then merged tokens by the priority of their split */
  uint32_t n_ranks = m->by_list ? 256 + m->n_merges : n_ids;
  if (n_ranks >= RANK_MASK) return NULL;
  tok__bt *bt = calloc(1, sizeof *bt);
  uint32_t *starts = malloc(((size_t)m->max_len + 1) * sizeof *starts);
  uint32_t *ids = malloc(((size_t)m->max_len + 1) * sizeof *ids);
  uint32_t *split_at = malloc((size_t)n_ids * sizeof *split_at);
  if (!bt || !starts || !ids || !split_at || !(bt->id_of = malloc((size_t)n_ranks * sizeof *bt->id_of)) ||
      !(bt->rank_of = malloc((size_t)n_ids * sizeof *bt->rank_of)) ||
      !(bt->len = calloc(n_ranks, sizeof *bt->len)) || !(bt->left = malloc((size_t)n_ranks * sizeof *bt->left)) ||
      !(bt->right = malloc((size_t)n_ranks * sizeof *bt->right)) ||
      !(bt->prefix = malloc((size_t)n_ranks * sizeof *bt->prefix)) ||
      !(bt->root = malloc(65536 * sizeof *bt->root)) ||
      !(bt->memo = tok__table_calloc((size_t)1 << MEMO_BITS, sizeof *bt->memo)))
    goto fail;
  bt->n_ranks = n_ranks;
  /* every entry is set, even of ranks no token has, so that an image is the same bytes
   * from build to build */
  for (uint32_t r = 0; r < n_ranks; r++)
    bt->id_of[r] = bt->prefix[r] = TOK__NONE, bt->left[r] = bt->right[r] = r;
  bool ok = m->max_len < 65536;
  size_t n_pairs = 0;
  /* every token's own encoding: reachable tokens get a rank and a split */
  for (uint32_t id = 0; id < n_ids && ok; id++) {
    bt->rank_of[id] = TOK__NONE;
    uint32_t len = m->off[id + 1] - m->off[id];
    const uint8_t *p = m->bytes + m->off[id];
    if (len == 0 || (m->literal && tok__bit(m->literal, id)) || tok__token_lookup(m, p, len) != id) continue;
    uint32_t rank;
    if (len == 1) {
      if (m->by_list) rank = p[0];
      else rank = id;
      split_at[id] = 0;
    } else {
      uint32_t split;
      if (own_split(m, p, len, starts, ids, &split) != id) continue; /* unreachable */
      split_at[id] = split;
      rank = m->by_list ? 256 + tok__merge_prio(m, p, split, len) : id;
      n_pairs++;
    }
    if (rank >= n_ranks || bt->id_of[rank] != TOK__NONE) {
      ok = false;
      break;
    }
    bt->rank_of[id] = rank;
    bt->id_of[rank] = id;
    bt->len[rank] = (uint16_t)len;
  }
  for (int c = 0; c < 256 && ok; c++) {
    bt->byte_rank[c] = bt->rank_of[m->byte_id[c]];
    if (bt->byte_rank[c] == TOK__NONE) ok = false;
  }
  if (!ok) goto fail;
  uint32_t cap = 1024; /* at most 2/3 full */
  while (cap < n_pairs + n_pairs / 2 + 2) cap *= 2;
  bt->pair_mask = cap - 1;
  if (!(bt->pairs = tok__table_calloc(cap, sizeof *bt->pairs))) goto fail;
  /* A split must join tokens of lower rank. A token whose split does not (an "outlier":
   * its merge is listed before the merge that makes one of its parts) is left out, with
   * every token built on it; those all contain the outlier's bytes, so a piece that does
   * not contain them encodes as if they did not exist, and a piece that does is left to
   * the heap merger (tok__bt_encode's caller checks). In rank order, parts first. */
  for (uint32_t r = 0; r < n_ranks && ok; r++) {
    uint32_t id = bt->id_of[r];
    if (id == TOK__NONE) continue;
    uint32_t len = bt->len[r];
    const uint8_t *p = m->bytes + m->off[id];
    if (len == 1) {
      bt->left[r] = bt->right[r] = r;
      if (r >= 256) ok = false; /* single bytes rank below every merged token */
      continue;
    }
    uint32_t l = tok__token_lookup(m, p, split_at[id]), rr = tok__token_lookup(m, p + split_at[id], len - split_at[id]);
    uint32_t lr = l == TOK__NONE ? TOK__NONE : bt->rank_of[l], rrr = rr == TOK__NONE ? TOK__NONE : bt->rank_of[rr];
    if (lr != TOK__NONE && rrr != TOK__NONE && lr < r && rrr < r) {
      bt->left[r] = lr;
      bt->right[r] = rrr;
      continue;
    }
    if (lr != TOK__NONE && rrr != TOK__NONE) { /* an outlier, not one built on one */
      if (bt->n_outliers == BT_MAX_OUTLIERS) {
        ok = false;
        break;
      }
      bt->outlier[bt->n_outliers++] = id;
    }
    bt->rank_of[id] = bt->id_of[r] = TOK__NONE;
  }
  for (uint32_t r = 0; r < n_ranks && ok; r++) {
    uint32_t id = bt->id_of[r];
    if (id == TOK__NONE) continue;
    uint32_t len = bt->len[r];
    const uint8_t *p = m->bytes + m->off[id];
    if (len == 1) continue;
    pair_put(bt, bt->left[r], bt->right[r], r);
    /* the longest reachable proper prefix */
    for (uint32_t k = len - 1; k >= 1; k--) {
      uint32_t t = k == 1 ? m->byte_id[p[0]] : tok__token_lookup(m, p, k);
      if (t != TOK__NONE && bt->rank_of[t] != TOK__NONE) {
        bt->prefix[r] = bt->rank_of[t];
        break;
      }
    }
  }
  if (!ok || !trie_build(m, bt)) goto fail;
  if (bt->n_outliers) {
    /* sorted by first two bytes (insertion sort: a few hundred at most), then indexed */
    for (uint32_t i = 1; i < bt->n_outliers; i++)
      for (uint32_t j = i; j > 0 && outlier_key(m, bt->outlier[j]) < outlier_key(m, bt->outlier[j - 1]); j--) {
        uint32_t t = bt->outlier[j];
        bt->outlier[j] = bt->outlier[j - 1];
        bt->outlier[j - 1] = t;
      }
    if (!(bt->outlier_at = calloc(65536, 1)) || !(bt->outlier_bits4 = calloc(65536 / 64, sizeof(uint64_t))))
      goto fail;
    for (uint32_t i = 0; i < bt->n_outliers; i++) {
      uint32_t id = bt->outlier[i], len = m->off[id + 1] - m->off[id];
      const uint8_t *t = m->bytes + m->off[id];
      tok__bit_set(bt->outlier_first, t[0]);
      if (len >= 4) {
        tok__bit_set(bt->outlier_bits4, outlier_hash4(t));
        continue;
      }
      if (!bt->outlier_bits2 && !(bt->outlier_bits2 = calloc(65536 / 64, sizeof(uint64_t)))) goto fail;
      tok__bit_set(bt->outlier_bits2, outlier_key(m, id));
    }
    for (uint32_t c = 0; c < 256; c++) {
      uint8_t run[4] = {(uint8_t)c, (uint8_t)c, (uint8_t)c, (uint8_t)c};
      if (!tok__bit(bt->outlier_bits4, outlier_hash4(run)) &&
          !(bt->outlier_bits2 && tok__bit(bt->outlier_bits2, c << 8 | c)))
        tok__bit_set(bt->outlier_run, c);
    }
    for (uint32_t i = bt->n_outliers; i-- > 0;) bt->outlier_at[outlier_key(m, bt->outlier[i])] = (uint8_t)(i + 1);
  }
  free(starts), free(ids), free(split_at);
  return bt;
fail:
  free(starts), free(ids), free(split_at);
  tok__bt_free(bt);
  return NULL;
}

const tok__bt *tok__bt_get(const tok__model *m_const, bool build)
{
  tok__model *m = (tok__model *)m_const; /* the tables are built once, then read-only */
  int state = atomic_load_explicit(&m->bt_state, memory_order_acquire);
  if (state != 0 || !build) return state == 1 ? m->bt : NULL;
  pthread_mutex_lock(&m->bt_lock);
  if (atomic_load_explicit(&m->bt_state, memory_order_relaxed) == 0) {
    m->bt = bt_build(m);
    atomic_store_explicit(&m->bt_state, m->bt ? 1 : 2, memory_order_release);
  }
  pthread_mutex_unlock(&m->bt_lock);
  return m->bt;
}

/* ---------------------------------------------------------------------------------------
 * Images. Building the tables costs 25-175 ms a vocabulary (the merge loop on every
 * token's own bytes), and until they exist long pieces take the heap merger, three times
 * slower on CJK text: so for the built-in vocabularies they are built once, at build time
 * (tools/gen_bt_image.c writes one blob per model; bt_image.S embeds them), and a model
 * whose fingerprint matches a blob uses the blob's arrays in place when it is loaded — no
 * work, and read-only pages of the executable that replicas on a node share through the
 * page cache (resident only where touched). Only the memo is the process's own.
 *
 * A blob of kind TOK__IMAGE_BT (image.h: the format, its writer and its checks, shared
 * with the models' blobs of vocab.c): the params below, then the arrays as sections. The
 * fingerprint hashes everything the tables are derived from (tokens, ids, merges), so a
 * blob never serves another vocabulary; the version changes with the tables' meaning.
 */
#define BT_IMAGE_VERSION 3
#define BT_ARRAYS(X) \
  X(id_of) X(rank_of) X(len) X(left) X(right) X(prefix) X(root) X(trie) X(pairs) \
  X(outlier_at) X(outlier_bits4) X(outlier_bits2)
enum {
#define X(f) BTA_##f,
  BT_ARRAYS(X)
#undef X
  BTA__COUNT
};

typedef struct bt_params {
  uint32_t n_ranks, n_ids, trie_mask, pair_mask, n_outliers, pad;
  uint32_t outlier[BT_MAX_OUTLIERS + 1];
  uint64_t outlier_first[4], outlier_run[4];
  uint32_t byte_rank[256];
} bt_params;
/* the three outlier arrays may be absent */
#define BT_OPTIONAL ((1u << BTA_outlier_at) | (1u << BTA_outlier_bits4) | (1u << BTA_outlier_bits2))

/* What a model's tables are derived from, hashed (about 1 ms for 200,000 tokens). */
static uint64_t model_fingerprint(const tok__model *m)
{
  uint64_t h = tok__image_mix(BT_IMAGE_VERSION, (uint64_t)m->id_end << 32 | m->n_tokens);
  h = tok__image_mix(h, (uint64_t)m->by_list << 2 | (uint64_t)m->byte_level << 1 | (m->literal != NULL));
  h = tok__image_mix(h, (uint64_t)m->n_merges << 32 | m->max_len);
  h = tok__image_hash(h, m->off, ((size_t)m->id_end + 1) * sizeof *m->off);
  h = tok__image_hash(h, m->bytes, m->off[m->id_end]);
  h = tok__image_hash(h, m->byte_id, sizeof m->byte_id);
  if (m->literal) h = tok__image_hash(h, m->literal, ((size_t)m->id_end + 63) / 64 * sizeof *m->literal);
  if (m->by_list) {
    size_t n_entries = m->merge_start[m->id_end];
    h = tok__image_hash(h, m->merge_id, (size_t)m->n_merges * sizeof *m->merge_id);
    h = tok__image_hash(h, m->merge_start, ((size_t)m->id_end + 1) * sizeof *m->merge_start);
    h = tok__image_hash(h, m->merge_left, n_entries * sizeof *m->merge_left);
    h = tok__image_hash(h, m->merge_prio, n_entries * sizeof *m->merge_prio);
  }
  return h;
}

/* The size each array must have, from the params' numbers (the three outlier arrays may
 * also be absent). */
static uint64_t array_bytes(const bt_params *h, int which)
{
  switch (which) {
  case BTA_rank_of: return (uint64_t)h->n_ids * 4;
  case BTA_len: return (uint64_t)h->n_ranks * 2;
  case BTA_id_of: case BTA_left: case BTA_right: case BTA_prefix: return (uint64_t)h->n_ranks * 4;
  case BTA_root: return 65536 * 4;
  case BTA_trie: return ((uint64_t)h->trie_mask + 1) * 8;
  case BTA_pairs: return ((uint64_t)h->pair_mask + 1) * 8;
  case BTA_outlier_at: return 65536;
  default: return 65536 / 8; /* the bit filters */
  }
}

/* m's tables bt as one blob (malloc'd, *len bytes), or NULL when out of memory. */
static uint8_t *blob_make(const tok__model *m, const tok__bt *bt, size_t *len)
{
  bt_params p = {.n_ranks = bt->n_ranks, .n_ids = m->id_end, .trie_mask = bt->trie_mask,
                 .pair_mask = bt->pair_mask, .n_outliers = bt->n_outliers};
  memcpy(p.outlier, bt->outlier, sizeof bt->outlier);
  memcpy(p.outlier_first, bt->outlier_first, sizeof p.outlier_first);
  memcpy(p.outlier_run, bt->outlier_run, sizeof p.outlier_run);
  memcpy(p.byte_rank, bt->byte_rank, sizeof p.byte_rank);
  const void *data[BTA__COUNT];
  uint64_t bytes[BTA__COUNT];
#define X(f)                    \
  data[BTA_##f] = bt->f;        \
  bytes[BTA_##f] = array_bytes(&p, BTA_##f);
  BT_ARRAYS(X)
#undef X
  return tok__image_make(TOK__IMAGE_BT, BT_IMAGE_VERSION, m->fingerprint, &p, sizeof p, BTA__COUNT, data, bytes, len);
}

tok_err tok__bt_image_write(const tok__model *m, FILE *out)
{
  const tok__bt *bt = tok__bt_get(m, true);
  if (!bt) return TOK_OK; /* nothing to write: the model does not allow the backtracker */
  size_t len;
  uint8_t *blob = blob_make(m, bt, &len);
  if (!blob) return TOK_ENOMEM;
  bool ok = fwrite(blob, 1, len, out) == len;
  free(blob);
  return ok ? TOK_OK : TOK_EIO;
}

/* The tables of the blob at h (len bytes readable from it, 8-byte aligned) for model m,
 * or NULL when the blob is not of m or not whole. */
static tok__bt *bt_from_blob(const tok__model *m, const tok__image_head *h, size_t len)
{
  if (!tok__image_head_ok(h, len, TOK__IMAGE_BT, BT_IMAGE_VERSION, sizeof(bt_params), BTA__COUNT) ||
      h->fingerprint != m->fingerprint)
    return NULL;
  const bt_params *p = tok__image_params(h);
  if (p->n_ids != m->id_end || p->n_outliers > BT_MAX_OUTLIERS || p->n_ranks >= RANK_MASK) return NULL;
  uint64_t want[BTA__COUNT];
  for (int i = 0; i < BTA__COUNT; i++) want[i] = array_bytes(p, i);
  if (!tok__image_sections_ok(h, want, BT_OPTIONAL)) return NULL;
  tok__bt *bt = calloc(1, sizeof *bt);
  if (!bt || !(bt->memo = tok__table_calloc((size_t)1 << MEMO_BITS, sizeof *bt->memo))) {
    free(bt);
    return NULL;
  }
  bt->in_image = true;
  bt->n_ranks = p->n_ranks;
  bt->n_outliers = p->n_outliers;
  bt->trie_mask = p->trie_mask;
  bt->pair_mask = p->pair_mask;
  memcpy(bt->outlier, p->outlier, sizeof bt->outlier);
  memcpy(bt->outlier_first, p->outlier_first, sizeof bt->outlier_first);
  memcpy(bt->outlier_run, p->outlier_run, sizeof bt->outlier_run);
  memcpy(bt->byte_rank, p->byte_rank, sizeof bt->byte_rank);
#define X(f) bt->f = tok__image_section(h, BTA_##f);
  BT_ARRAYS(X)
#undef X
  return bt;
}

/* Whether every rank, id and index in bt (from a file) is in range and every split joins
 * lower ranks, so that no walk, lookup or pair check can leave the arrays or loop: a cache
 * file is checked this way before use, never trusted (about 5 ms for 200,000 tokens). */
static inline bool rank_ok(const tok__bt *bt, uint64_t r)
{
  return r < bt->n_ranks && bt->id_of[r] != TOK__NONE;
}

static bool values_ok(const tok__model *m, const tok__bt *bt)
{
  uint32_t n = bt->n_ranks;
  for (uint32_t r = 0; r < n; r++)
    if (bt->id_of[r] != TOK__NONE && (bt->id_of[r] >= m->id_end || bt->rank_of[bt->id_of[r]] != r)) return false;
  for (uint32_t id = 0; id < m->id_end; id++)
    if (bt->rank_of[id] != TOK__NONE && (bt->rank_of[id] >= n || bt->id_of[bt->rank_of[id]] != id)) return false;
  for (uint32_t r = 0; r < n; r++) {
    uint32_t id = bt->id_of[r];
    if (id == TOK__NONE) continue;
    if (bt->len[r] == 0 || bt->len[r] != m->off[id + 1] - m->off[id]) return false;
    if (bt->prefix[r] != TOK__NONE && (!rank_ok(bt, bt->prefix[r]) || bt->len[bt->prefix[r]] >= bt->len[r])) return false;
    uint32_t l = bt->left[r], rr = bt->right[r];
    if (bt->len[r] == 1 ? l != r || rr != r || r >= 256
                        : !rank_ok(bt, l) || !rank_ok(bt, rr) || l >= r || rr >= r ||
                              bt->len[l] + bt->len[rr] != bt->len[r])
      return false;
  }
  for (int c = 0; c < 256; c++)
    if (!rank_ok(bt, bt->byte_rank[c])) return false;
  for (uint32_t i = 0; i < 65536; i++)
    if (!rank_ok(bt, bt->root[i] & RANK_MASK)) return false;
  for (uint32_t i = 0; i <= bt->trie_mask; i++)
    if (bt->trie[i] && (bt->trie[i] & RANK_MASK) != RANK_MASK && !rank_ok(bt, bt->trie[i] & RANK_MASK)) return false;
  for (uint32_t i = 0; i <= bt->pair_mask; i++) {
    uint64_t e = bt->pairs[i];
    if (e && (!rank_ok(bt, e & RANK_MASK) || !rank_ok(bt, (e >> RANK_BITS) & RANK_MASK) ||
              (e >> (2 * RANK_BITS)) == 0 || !rank_ok(bt, (e >> (2 * RANK_BITS)) - 1)))
      return false;
  }
  for (uint32_t i = 0; i < bt->n_outliers; i++)
    if (bt->outlier[i] >= m->id_end || m->off[bt->outlier[i] + 1] - m->off[bt->outlier[i]] < 2) return false;
  if (bt->outlier_at)
    for (uint32_t i = 0; i < 65536; i++)
      if (bt->outlier_at[i] > bt->n_outliers) return false;
  return true;
}

/* The cache file of m in dir: DIR/bt-<fingerprint>-v<version>.tokdbt. */
static bool cache_path(const tok__model *m, const char *dir, char *path, size_t cap)
{
  int n = snprintf(path, cap, "%s/bt-%016llx-v%d.tokdbt", dir, (unsigned long long)m->fingerprint,
                   BT_IMAGE_VERSION);
  return n > 0 && (size_t)n < cap;
}

/* Makes m's tables the given ones (if none are yet); true when they were taken. */
static bool adopt(tok__model *m, tok__bt *bt)
{
  bool taken = false;
  pthread_mutex_lock(&m->bt_lock);
  if (atomic_load_explicit(&m->bt_state, memory_order_relaxed) == 0) {
    m->bt = bt;
    atomic_store_explicit(&m->bt_state, 1, memory_order_release);
    taken = true;
  }
  pthread_mutex_unlock(&m->bt_lock);
  return taken;
}

/* Reads the cache file at path into private memory, or returns NULL. The file must be a
 * regular file owned by this user that nobody else can write (O_NOFOLLOW: a symlink is
 * refused; O_NONBLOCK: a FIFO planted at the path cannot block the open). Its bytes are
 * copied, never mapped: a mapped file that is truncated under the server (a cleanup job, a
 * user) would fault the next access with SIGBUS, and one rewritten in place would change
 * tables that were checked before the change. The copy costs the tables' size in anonymous
 * memory (7-12 MB for a 128-200k vocabulary), as a first start that builds them does. */
static uint8_t *cache_read(const char *path, size_t *len_out)
{
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return NULL;
  struct stat st;
  uint8_t *copy = MAP_FAILED;
  size_t len = 0;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
      !(st.st_mode & (S_IWGRP | S_IWOTH)) && st.st_size >= (off_t)sizeof(tok__image_head) &&
      st.st_size < ((off_t)1 << 32)) {
    len = (size_t)st.st_size;
    copy = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  }
  bool ok = copy != MAP_FAILED;
  for (size_t at = 0; ok && at < len;) {
    ssize_t n = read(fd, copy + at, len - at);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) ok = false; /* shorter than it was a moment ago: changing under us */
    else at += (size_t)n;
  }
  close(fd);
  if (!ok) {
    if (copy != MAP_FAILED) munmap(copy, len);
    return NULL;
  }
  /* the tables are never written once checked */
  mprotect(copy, len, PROT_READ);
  *len_out = len;
  return copy;
}

bool tok__bt_cache_load(const tok__model *m_const, const char *dir)
{
  tok__model *m = (tok__model *)m_const;
  char path[4096];
  if (!dir || !m->byte_level || atomic_load(&m->bt_state) != 0 || !cache_path(m, dir, path, sizeof path)) return false;
  size_t len;
  uint8_t *copy = cache_read(path, &len);
  if (!copy) return false;
  tok__bt *bt = tok__image_checksum_ok(copy, len) ? bt_from_blob(m, (const tok__image_head *)copy, len) : NULL;
  if (bt) {
    bt->map = copy, bt->map_len = len;
    if (values_ok(m, bt) && adopt(m, bt)) return true;
    tok__bt_free(bt); /* unmaps */
    return false;
  }
  munmap(copy, len);
  return false;
}

void tok__bt_cache_seal(uint8_t *blob, size_t len)
{
  tok__image_seal(blob, len);
}

void tok__bt_cache_store(const tok__model *m, const char *dir)
{
  char path[4096], tmp[4160];
  if (!dir || atomic_load_explicit(&m->bt_state, memory_order_acquire) != 1 || m->bt->in_image ||
      !cache_path(m, dir, path, sizeof path))
    return;
  size_t len;
  uint8_t *blob = blob_make(m, m->bt, &len);
  if (!blob) return;
  /* written whole under a fresh name of our own (mkostemp: O_CREAT|O_EXCL, mode 0600, so a
   * name planted in the directory, a symlink above all, is never opened), then renamed: a
   * reader sees the old file or the new one, never a part, and rename replaces whatever is
   * at the path (a symlink included) instead of following it */
  int n = snprintf(tmp, sizeof tmp, "%s.XXXXXX", path);
  int fd = n > 0 && (size_t)n < sizeof tmp ? mkostemp(tmp, O_CLOEXEC) : -1;
  bool ok = fd >= 0;
  for (size_t at = 0; ok && at < len;) {
    ssize_t w = write(fd, blob + at, len - at);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) ok = false;
    else at += (size_t)w;
  }
  if (fd >= 0 && close(fd) != 0) ok = false;
  if (ok) ok = rename(tmp, path) == 0;
  if (!ok && fd >= 0) unlink(tmp);
  free(blob);
}

bool tok__bt_attach_image(const tok__model *m_const)
{
  tok__model *m = (tok__model *)m_const;
  if (!m->byte_level) return false;
  /* once per model: the image, the cache file's name and its check all use it (a model
   * from the image brings it) */
  if (!m->fingerprint) m->fingerprint = model_fingerprint(m);
  if (atomic_load(&m->bt_state) != 0) return false;
  tok__bt *bt = NULL;
  /* a model's own blob (vocab.c, "Images") is stepped over: bt_from_blob checks the kind */
  for (const tok__image_head *h = NULL; !bt && (h = tok__image_builtin_next(h));) bt = bt_from_blob(m, h, h->blob_len);
  if (!bt) return false;
  if (!adopt(m, bt)) tok__bt_free(bt);
  return true;
}

void tok__bt_memory(const tok__model *m, tok__mem_acc *acc)
{
  if (atomic_load_explicit(&m->bt_state, memory_order_acquire) != 1) return;
  const tok__bt *bt = m->bt;
  bool file = bt->in_image && !bt->map; /* the image's pages (a cache file's are a copy) */
  bt_params h = {.n_ranks = bt->n_ranks, .n_ids = m->id_end, .trie_mask = bt->trie_mask, .pair_mask = bt->pair_mask};
#define X(f) tok__mem_add(acc, "bt_tables", bt->f, bt->f ? array_bytes(&h, BTA_##f) : 0, file);
  BT_ARRAYS(X)
#undef X
  tok__mem_add(acc, "bt_memo", (const void *)bt->memo, ((size_t)1 << MEMO_BITS) * sizeof *bt->memo, false);
}

tok__bt *tok__bt_build(const tok__model *m)
{
  return bt_build(m);
}

bool tok__bt_same(const tok__model *m, const tok__bt *a, const tok__bt *b)
{
  if (a->n_ranks != b->n_ranks || a->n_outliers != b->n_outliers || a->trie_mask != b->trie_mask ||
      a->pair_mask != b->pair_mask || memcmp(a->outlier, b->outlier, sizeof a->outlier) ||
      memcmp(a->outlier_first, b->outlier_first, sizeof a->outlier_first) ||
      memcmp(a->outlier_run, b->outlier_run, sizeof a->outlier_run) ||
      memcmp(a->byte_rank, b->byte_rank, sizeof a->byte_rank))
    return false;
  bt_params h = {.n_ranks = a->n_ranks, .n_ids = m->id_end, .trie_mask = a->trie_mask, .pair_mask = a->pair_mask};
#define X(f)                                                                                   \
  if (!a->f != !b->f || (a->f && memcmp(a->f, b->f, (size_t)array_bytes(&h, BTA_##f)) != 0)) \
    return false;
  BT_ARRAYS(X)
#undef X
  return true;
}

bool tok__bt_from_image(const tok__model *m)
{
  return atomic_load_explicit(&m->bt_state, memory_order_acquire) == 1 && m->bt->in_image;
}

/* May token r2 follow token r1? False when encoding their bytes together would merge
 * across the boundary before one of them is complete (rust-gems' is_valid_token_pair). */
static bool valid_pair(const tok__bt *bt, uint32_t r1, uint32_t r2)
{
  uint32_t limit = UINT32_MAX;
  for (;;) {
    uint32_t joined = pair_get(bt, r1, r2);
    if (joined != TOK__NONE && joined < limit) return false;
    if (r1 > r2) {
      limit = r1;
      r1 = bt->right[r1];
      if (r1 == limit) {
        limit = r2 + 1;
        r2 = bt->left[r2];
        if (r2 + 1 == limit) return true;
      }
    } else {
      limit = r2 + 1;
      r2 = bt->left[r2];
      if (r2 + 1 == limit) {
        limit = r1;
        r1 = bt->right[r1];
        if (r1 == limit) return true;
      }
    }
  }
}

/* The longest reachable token at p[0..n), n >= 1, as a rank, and its length in *len:
 * down the trie two bytes a step until a step is missing, then one more byte for a token
 * of odd length. Above the rank's bits, the number of bytes the answer depends on (any
 * text that starts with them has the same longest token; WALK_SEEN_MAX at most): 0 when
 * the walk stopped at the end of p, or looked at one or two bytes. */
#define WALK_SEEN(r) ((r) >> RANK_BITS)
#define WALK_SEEN_MAX ((1u << (32 - RANK_BITS)) - 1)

static inline uint32_t walk_result(uint32_t rank, size_t seen)
{
  return rank | (uint32_t)(seen <= WALK_SEEN_MAX ? seen : 0) << RANK_BITS;
}

static uint32_t longest_match(const tok__bt *bt, tok_scratch *s, const uint8_t *p, size_t n,
                              uint32_t *len)
{
  *len = 1;
  if (n < 2) return bt->byte_rank[p[0]];
  uint32_t node = (uint32_t)p[0] << 8 | p[1], root = bt->root[node], best = root & RANK_MASK;
  if (root & TRIE_TWO) *len = 2;
  if (!(root & TRIE_DEEPER)) return best;
  size_t i = 2;
  for (; i + 1 < n; i += 2) {
    s->stats.rank_lookups++;
    uint32_t at = trie_find(bt, (uint64_t)node << 16 | (uint32_t)p[i] << 8 | p[i + 1]);
    if (at == UINT32_MAX) break;
    uint64_t e = bt->trie[at];
    if ((e & RANK_MASK) != RANK_MASK) best = (uint32_t)e & RANK_MASK, *len = (uint32_t)i + (e & TRIE_AT1 ? 1 : 2);
    if (!(e & TRIE_KIDS)) return walk_result(best, i + 2);
    node = 65536 + at;
  }
  if (i < n) {
    s->stats.rank_lookups++;
    uint32_t at = trie_find(bt, TRIE_ODD | (uint64_t)node << 16 | (uint32_t)p[i] << 8);
    if (at != UINT32_MAX) best = (uint32_t)bt->trie[at] & RANK_MASK, *len = (uint32_t)i + 1;
    if (i + 1 < n) return walk_result(best, i + 2);
  }
  return best;
}

/* The last long walk: where the text repeats (a run of one character, or of a few), the
 * next position usually starts with the same bytes, and one comparison replaces a walk of
 * up to max_len / 2 probes. */
typedef struct {
  const uint8_t *at;
  uint32_t seen, rank; /* the match's length is bt->len[rank] */
} last_walk;

#define WALK_REMEMBER 8 /* walks that depend on fewer bytes are not remembered */

/* longest_match, or the remembered walk when p starts with its bytes. */
static inline uint32_t match_at(const tok__bt *bt, tok_scratch *s, last_walk *w, const uint8_t *p,
                                size_t n, uint32_t *len)
{
  if (w->seen && n >= w->seen && tok__load64(p) == tok__load64(w->at) &&
      memcmp(p + 8, w->at + 8, w->seen - 8) == 0) {
    *len = bt->len[w->rank];
    return w->rank;
  }
  uint32_t r = longest_match(bt, s, p, n, len);
  if (WALK_SEEN(r) >= WALK_REMEMBER) w->at = p, w->seen = WALK_SEEN(r), w->rank = r & RANK_MASK;
  return r & RANK_MASK;
}

/* valid_pair through a memo: adjacent pairs recur (a CJK text has a few thousand
 * characters, and a language's common pairs come back in every text). The memo belongs
 * to the model and is shared by all threads: 2^MEMO_BITS sets of two 4-byte entries
 * (1 MiB), a set one aligned word. The pair's 42-bit key goes through a bijective mixer;
 * the set's index is the mixed key's high MEMO_BITS bits and an entry stores the other
 * 42 - MEMO_BITS bits as a tag, so index and tag name exactly one pair and a hit is never
 * another pair's answer. An entry is 1 << 31 | tag << 1 | answer (0: empty); a new entry
 * goes first and the one it displaces second (two ways: a CJK text missed 2.9% of its
 * lookups in a direct-mapped memo of the same size, from pairs evicting each other). Sets
 * are read and written whole with relaxed atomics: a thread sees an old or a new set,
 * each right. */
#define KEY_BITS (2 * RANK_BITS)
#define KEY_MASK ((1ull << KEY_BITS) - 1)

static inline uint64_t mix42(uint64_t k)
{
  k ^= k >> 21;
  k = (k * 0x9E3779B97F4A7C15ull) & KEY_MASK; /* odd multiplier: a bijection mod 2^42 */
  return k ^ (k >> 21);
}

static inline bool valid_pair_memo(const tok__bt *bt, uint32_t r1, uint32_t r2)
{
  uint64_t x = mix42((uint64_t)r1 << RANK_BITS | r2);
  _Atomic uint64_t *set = &bt->memo[x >> (KEY_BITS - MEMO_BITS)];
  uint32_t want = 1u << 31 | (uint32_t)(x & ((1ull << (KEY_BITS - MEMO_BITS)) - 1)) << 1;
  uint64_t got = atomic_load_explicit(set, memory_order_relaxed);
  if (((uint32_t)got & ~1u) == want) return got & 1;
  if (((uint32_t)(got >> 32) & ~1u) == want) return (got >> 32) & 1;
  bool v = valid_pair(bt, r1, r2);
  /* the newest entry first, the one it displaces second */
  atomic_store_explicit(set, got << 32 | want | v, memory_order_relaxed);
  return v;
}

size_t tok__bt_encode(const tok__model *m, const tok__bt *bt, tok_scratch *s, const uint8_t *p,
                      size_t n, uint32_t *ids, uint32_t *offsets)
{
  if (bt->n_outliers)
    for (size_t i = 0; i + 1 < n; i++) {
      if (!tok__bit(bt->outlier_first, p[i])) continue;
      if (p[i] == p[i + 1] && tok__bit(bt->outlier_run, p[i])) {
        /* positions i..i+4 of a run of eight bytes c see only c c c c */
        uint64_t run = p[i] * 0x0101010101010101ull;
        size_t from = i;
        while (i + 8 <= n && tok__load64(p + i) == run) i += 5;
        if (i != from) {
          i--;
          continue;
        }
      }
      uint32_t key = (uint32_t)p[i] << 8 | p[i + 1];
      if (!(i + 4 <= n && tok__bit(bt->outlier_bits4, outlier_hash4(p + i))) &&
          !(bt->outlier_bits2 && tok__bit(bt->outlier_bits2, key)))
        continue;
      for (uint32_t k = bt->outlier_at[key]; k && k <= bt->n_outliers && outlier_key(m, bt->outlier[k - 1]) == key; k++) {
        uint32_t id = bt->outlier[k - 1], len = m->off[id + 1] - m->off[id];
        if (len <= n - i && memcmp(p + i, m->bytes + m->off[id], len) == 0) return SIZE_MAX;
      }
    }
  /* stack of ranks in part_id and their ends in part_next; dead[i]: no valid encoding of
   * p[0..i) ends at i */
  uint32_t *stack = s->part_id, *ends = s->part_next;
  uint8_t *dead = s->part_fixed;
  memset(dead, 0, n + 1);
  size_t k = 0, pos = 0;
  last_walk walk = {0};
  uint32_t next_len, next = match_at(bt, s, &walk, p, n, &next_len);
  while (next != TOK__NONE) {
    uint32_t token = next, len = next_len, last = k ? stack[k - 1] : TOK__NONE;
    for (;;) {
      size_t end = pos + len;
      if (!dead[end] && (last == TOK__NONE || valid_pair_memo(bt, last, token))) {
        stack[k] = token;
        ends[k++] = (uint32_t)end;
        pos = end;
        next = pos < n ? match_at(bt, s, &walk, p + pos, n - pos, &next_len) : TOK__NONE;
        break;
      }
      if (bt->prefix[token] != TOK__NONE) {
        token = bt->prefix[token];
        len = bt->len[token];
        continue;
      }
      /* nothing fits here: take the previous token back (at the start, a single byte always
       * fits; reaching here would mean the tables are wrong: the caller falls back) */
      if (k == 0) return SIZE_MAX;
      dead[pos] = 1;
      k--;
      pos = k ? ends[k - 1] : 0;
      next = last;
      next_len = bt->len[last];
      break;
    }
    s->stats.merge_steps++;
  }
  for (size_t i = 0; i < k; i++) {
    ids[i] = bt->id_of[stack[i]];
    if (offsets) offsets[2 * i] = i ? ends[i - 1] : 0, offsets[2 * i + 1] = ends[i];
  }
  return k;
}
