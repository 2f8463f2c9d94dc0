/*
 * bpe.c — the model stage: byte-pair merging of one pre-tokenizer piece into token ids.
 *
 * A piece that is itself a token is settled by one hash probe (for merge lists without
 * ignore_merges only when that token is its own encoding, tok__model.whole_ok). Otherwise
 * the piece is split into parts — bytes (byte-level) or characters (char-level, with
 * <0xNN> byte fallback and unknown-token handling) — and adjacent parts are merged by
 * priority, lowest first, leftmost among equals, until no pair merges. Both tiktoken and
 * Hugging Face define it so; they differ only in what a pair's priority is
 * (tok__merge_prio). Three implementations give the same result:
 *
 *   - scan: arrays on the stack, a linear scan for the minimum after every merge. O(n^2)
 *     but tiny constants; used for pieces of up to TOK__LONG_PIECE parts (TOK__BT_PIECE
 *     bytes where the backtracker below runs: the short pieces that are not a token).
 *   - heap: a doubly linked list of parts plus an indexed binary min-heap of the
 *     positions that start a pair that merges, ordered by (priority, position); O(n log n).
 *     Used for long pieces (runs of one character, base64, whitespace; whole texts for
 *     models without a pre-tokenizer), where tiktoken's scan takes seconds. Ordering by
 *     (priority, position) reproduces "lowest first, leftmost among equals". 25 bytes of
 *     scratch per byte of the piece.
 *
 *   - backtracking (backtrack.c): for byte-level models whose merges allow it (checked
 *     when its tables are built), pieces longer than TOK__BT_PIECE bytes are walked once,
 *     longest token first, with a check that each token may follow the one before and
 *     backtracking where none may: linear in the piece, and faster than both above on
 *     anything longer than a few bytes. The heap merger remains for the models without
 *     it (SentencePiece-style models) and the pieces it declines (Llama 3's outliers).
 *
 * None allocates: they use arrays the caller sized in the scratch.
 */
#include <stdlib.h>

#include "core/internal.h"

#define DEAD UINT32_MAX
#define NO_PREV (UINT32_MAX - 1)

tok_err tok__scratch_fit(tok_scratch *s, size_t piece_len)
{
  if (piece_len <= s->piece_cap) return TOK_OK;
  size_t cap = s->piece_cap ? s->piece_cap : 1024;
  while (cap < piece_len) cap *= 2;
  if (cap > UINT32_MAX / 4) return TOK_ELIMIT;
  uint32_t *a = realloc(s->part_id, (cap + 1) * sizeof *a);
  if (a) s->part_id = a;
  uint32_t *b = realloc(s->part_pair, (cap + 1) * sizeof *b);
  if (b) s->part_pair = b;
  uint32_t *c = realloc(s->part_next, (cap + 1) * sizeof *c);
  if (c) s->part_next = c;
  uint32_t *d = realloc(s->part_prev, (cap + 1) * sizeof *d);
  if (d) s->part_prev = d;
  uint8_t *f = realloc(s->part_fixed, (cap + 1) * sizeof *f);
  if (f) s->part_fixed = f;
  uint32_t *h = realloc(s->heap_pos, (cap + 1) * sizeof *h);
  if (h) s->heap_pos = h;
  uint32_t *g = realloc(s->heap_slot, (cap + 1) * sizeof *g);
  if (g) s->heap_slot = g;
  if (!a || !b || !c || !d || !f || !h || !g) return TOK_ENOMEM;
  s->piece_cap = cap;
  return TOK_OK;
}

static size_t utf8_len(uint8_t lead)
{
  return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

/* ---------------------------------------------------------------------------------------
 * Initial parts, in the scratch arrays indexed by the byte position where a part starts:
 * part_next[i] is where the next part starts (n after the last), part_id[i] its token
 * (TOK__NONE: a character no token covers, which produces nothing) and part_fixed[i] is
 * set for parts that never merge (byte fallback, unknown, uncovered). Returns the number
 * of parts; *missing is set when a byte-level byte has no token.
 */
static size_t init_parts(const tok__model *m, tok_scratch *s, const uint8_t *p, size_t n,
                         bool *missing)
{
  uint32_t *next = s->part_next, *id = s->part_id;
  uint8_t *fixed = s->part_fixed;
  *missing = false;
  if (m->byte_level) {
    for (size_t i = 0; i < n; i++) {
      next[i] = (uint32_t)(i + 1);
      id[i] = m->byte_id[p[i]];
      fixed[i] = id[i] == TOK__NONE;
      *missing |= fixed[i];
    }
    return n;
  }
  /* char-level, as Hugging Face's merge_word: a character that is a token is a part; else
   * its bytes' <0xNN> tokens (byte_fallback), else the unknown token (consecutive ones
   * fused with fuse_unk), else nothing */
  size_t k = 0, last = 0;
  bool last_unk = false;
  for (size_t i = 0; i < n;) {
    size_t cl = utf8_len(p[i]);
    if (cl > n - i) cl = n - i;
    uint32_t t = cl <= m->max_len ? tok__token_lookup(m, p + i, cl) : TOK__NONE;
    bool fallback = t == TOK__NONE && m->byte_fallback;
    for (size_t j = 0; fallback && j < cl; j++) fallback = m->fallback_id[p[i + j]] != TOK__NONE;
    if (t != TOK__NONE || fallback) {
      for (size_t j = 0; j < (fallback ? cl : 1); j++) {
        size_t at = i + j;
        if (k) next[last] = (uint32_t)at;
        id[at] = fallback ? m->fallback_id[p[at]] : t;
        fixed[at] = fallback;
        last = at, k++;
      }
      last_unk = false;
    } else if (m->unk_id != TOK__NONE && last_unk && m->fuse_unk) {
      /* the previous unknown part grows over this character */
    } else {
      if (k) next[last] = (uint32_t)i;
      id[i] = m->unk_id; /* TOK__NONE without an unknown token: the character is dropped */
      fixed[i] = 1;
      last = i, k++;
      last_unk = m->unk_id != TOK__NONE;
    }
    i += cl;
  }
  if (k) next[last] = (uint32_t)n;
  return k;
}

/* Priority of merging the part at a with the part at b, which ends at e. */
static inline uint32_t pair_prio(const tok__model *m, const uint8_t *p, const uint8_t *fixed,
                                 uint32_t a, uint32_t b, uint32_t e)
{
  if (fixed[a] || fixed[b]) return TOK__NONE;
  if (m->pair_prio && e - a == 2) return m->pair_prio[(uint32_t)p[a] << 8 | p[a + 1]];
  return tok__merge_prio(m, p + a, b - a, e - a);
}

/* ---------------------------------------------------------------------------------------
 * Scan merger: at most TOK__LONG_PIECE parts, arrays on the stack. Writes the result to
 * ids/starts (starts[k + 1] ends part k).
 */
static size_t merge_scan(const tok__model *m, tok_scratch *s, const uint8_t *p, size_t n_parts,
                         uint32_t *ids, uint32_t *starts)
{
  uint32_t pair[TOK__LONG_PIECE];
  uint8_t fixed[TOK__LONG_PIECE];
  size_t n = n_parts;
  for (uint32_t k = 0, at = 0; k < n; k++, at = s->part_next[at]) {
    starts[k] = at;
    ids[k] = s->part_id[at];
    fixed[k] = s->part_fixed[at];
  }
  starts[n] = n ? s->part_next[starts[n - 1]] : 0;
  for (size_t i = 0; i + 1 < n; i++)
    pair[i] = fixed[i] || fixed[i + 1] ? TOK__NONE
              : m->pair_prio && starts[i + 2] - starts[i] == 2
                  ? m->pair_prio[(uint32_t)p[starts[i]] << 8 | p[starts[i] + 1]]
                  : tok__merge_prio(m, p + starts[i], starts[i + 1] - starts[i],
                                    starts[i + 2] - starts[i]);
  while (n > 1) {
    uint32_t best = TOK__NONE;
    size_t at = 0;
    for (size_t i = 0; i + 1 < n; i++)
      if (pair[i] < best) best = pair[i], at = i;
    if (best == TOK__NONE) break;
    s->stats.merge_steps++;
    /* part at absorbs part at + 1 */
    ids[at] = tok__merge_result(m, best);
    for (size_t i = at + 1; i + 1 < n; i++) {
      starts[i] = starts[i + 1];
      ids[i] = ids[i + 1];
      fixed[i] = fixed[i + 1];
      pair[i] = pair[i + 1];
    }
    starts[n - 1] = starts[n];
    n--;
    if (at + 1 < n) {
      pair[at] = fixed[at + 1] ? TOK__NONE
                               : tok__merge_prio(m, p + starts[at], starts[at + 1] - starts[at],
                                                 starts[at + 2] - starts[at]);
      s->stats.rank_lookups++;
    }
    if (at > 0) {
      pair[at - 1] = fixed[at - 1] ? TOK__NONE
                                   : tok__merge_prio(m, p + starts[at - 1], starts[at] - starts[at - 1],
                                                     starts[at + 1] - starts[at - 1]);
      s->stats.rank_lookups++;
    }
  }
  return n;
}

/* ---------------------------------------------------------------------------------------
 * Heap merger: parts as a linked list over byte positions; the pairs that can merge in an
 * indexed binary min-heap of positions ordered by (priority, position), so that a pair
 * whose priority changes is moved in place rather than pushed again. Memory: 4 bytes of
 * heap and 4 of heap slot per position (a heap of stale entries would need up to 24).
 */
#define NOT_IN_HEAP UINT32_MAX

typedef struct heap {
  uint32_t *pos;   /* heap order: byte positions */
  uint32_t *slot;  /* per position: its index in pos, or NOT_IN_HEAP */
  const uint32_t *key; /* per position: the priority of the pair it starts */
  size_t len;
} heap;

static inline bool heap_less(const heap *h, uint32_t a, uint32_t b)
{
  return h->key[a] < h->key[b] || (h->key[a] == h->key[b] && a < b);
}

static void heap_place(heap *h, size_t i, uint32_t p)
{
  h->pos[i] = p;
  h->slot[p] = (uint32_t)i;
}

static void sift_up(heap *h, size_t i, uint32_t p)
{
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!heap_less(h, p, h->pos[parent])) break;
    heap_place(h, i, h->pos[parent]);
    i = parent;
  }
  heap_place(h, i, p);
}

static void sift_down(heap *h, size_t i, uint32_t p)
{
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= h->len) break;
    if (child + 1 < h->len && heap_less(h, h->pos[child + 1], h->pos[child])) child++;
    if (!heap_less(h, h->pos[child], p)) break;
    heap_place(h, i, h->pos[child]);
    i = child;
  }
  heap_place(h, i, p);
}

static void heap_remove(heap *h, uint32_t p)
{
  size_t i = h->slot[p];
  h->slot[p] = NOT_IN_HEAP;
  uint32_t last = h->pos[--h->len];
  if (i == h->len) return;
  /* the last element takes p's place and moves whichever way it must */
  if (i > 0 && heap_less(h, last, h->pos[(i - 1) / 2])) sift_up(h, i, last);
  else sift_down(h, i, last);
}

/* After key[p] changed: insert, move, or remove (key NONE) p. */
static void heap_update(heap *h, uint32_t p)
{
  if (h->key[p] == TOK__NONE) {
    if (h->slot[p] != NOT_IN_HEAP) heap_remove(h, p);
    return;
  }
  if (h->slot[p] == NOT_IN_HEAP) {
    sift_up(h, h->len++, p);
    return;
  }
  size_t i = h->slot[p];
  if (i > 0 && heap_less(h, p, h->pos[(i - 1) / 2])) sift_up(h, i, p);
  else sift_down(h, i, p);
}

/* Merges the parts set up by init_parts in place (part_next/part_id stay valid). */
static void merge_heap(const tok__model *m, tok_scratch *s, const uint8_t *p, size_t n)
{
  uint32_t *next = s->part_next, *prev = s->part_prev, *id = s->part_id, *pair = s->part_pair;
  uint8_t *fixed = s->part_fixed;
  heap h = {s->heap_pos, s->heap_slot, pair, 0};

  uint32_t before = NO_PREV;
  for (uint32_t i = 0; i < n; i = next[i]) {
    prev[i] = before;
    before = i;
    h.slot[i] = NOT_IN_HEAP;
    pair[i] = next[i] < n ? pair_prio(m, p, fixed, i, next[i], next[next[i]]) : TOK__NONE;
    if (pair[i] != TOK__NONE) sift_up(&h, h.len++, i);
  }
  s->stats.heap_ops += h.len;

  while (h.len > 0) {
    uint32_t i = h.pos[0];
    uint32_t prio = pair[i];
    heap_remove(&h, i);
    s->stats.heap_ops++;
    s->stats.merge_steps++;
    /* part i absorbs the part j after it */
    uint32_t j = next[i];
    id[i] = tok__merge_result(m, prio);
    next[i] = next[j];
    prev[j] = DEAD;
    if (h.slot[j] != NOT_IN_HEAP) {
      heap_remove(&h, j);
      s->stats.heap_ops++;
    }
    if (next[j] < n) prev[next[j]] = i;
    pair[i] = next[i] < n ? pair_prio(m, p, fixed, i, next[i], next[next[i]]) : TOK__NONE;
    s->stats.rank_lookups++;
    heap_update(&h, i);
    s->stats.heap_ops++;
    if (prev[i] != NO_PREV) {
      uint32_t before_i = prev[i];
      pair[before_i] = pair_prio(m, p, fixed, before_i, i, next[i]);
      s->stats.rank_lookups++;
      heap_update(&h, before_i);
      s->stats.heap_ops++;
    }
  }
}

/* ---------------------------------------------------------------------------------------
 * Entry points
 */

/* Writes the parts of p after merging: ids, and [start, end) pairs relative to p when
 * offsets is not NULL. Parts without a token (uncovered characters) are left out. */
typedef enum { MERGE_AUTO, MERGE_SCAN, MERGE_HEAP } merge_mode;

static tok_err merge_piece(const tok__model *m, tok_scratch *s, const uint8_t *p, size_t n,
                           merge_mode mode, uint32_t *ids, uint32_t *offsets, size_t *n_out,
                           tok_error *err)
{
  bool missing;
  if (n > s->piece_cap && tok__scratch_fit(s, n) != TOK_OK)
    return tok__fail(err, TOK_ENOMEM, TOK_NO_POS, TOK_NO_POS, "out of memory for a piece of %zu bytes", n);
  size_t k = 0;
  /* byte-level pieces above TOK__BT_PIECE bytes: the backtracker, when the model has it
   * (its tables built) and it takes the piece; it uses its own arrays, so the parts below
   * are set up only for the scan and the heap merger */
  if (mode == MERGE_AUTO && m->byte_level && n > TOK__BT_PIECE) {
    const tok__bt *bt = tok__bt_get(m, n >= TOK__BT_BUILD_PIECE);
    if (bt && (k = tok__bt_encode(m, bt, s, p, n, ids, offsets)) != SIZE_MAX) {
      s->stats.backtracked++;
      *n_out = k;
      return TOK_OK;
    }
    k = 0;
  }
  size_t n_parts = init_parts(m, s, p, n, &missing);
  if (missing && m->missing_is_error) {
    size_t i = 0;
    while (m->byte_id[p[i]] != TOK__NONE) i++;
    return tok__fail(err, TOK_EBYTE_MISSING, i, TOK_NO_POS,
                     "byte 0x%02x has no token in this vocabulary", p[i]);
  }
  if (mode == MERGE_SCAN || (mode == MERGE_AUTO && n_parts <= TOK__LONG_PIECE)) {
    uint32_t part_ids[TOK__LONG_PIECE], starts[TOK__LONG_PIECE + 1];
    size_t parts = merge_scan(m, s, p, n_parts, part_ids, starts);
    for (size_t i = 0; i < parts; i++) {
      if (part_ids[i] == TOK__NONE) continue;
      ids[k] = part_ids[i];
      if (offsets) offsets[2 * k] = starts[i], offsets[2 * k + 1] = starts[i + 1];
      k++;
    }
  } else {
    merge_heap(m, s, p, n);
    for (uint32_t i = 0; i < n; i = s->part_next[i]) {
      if (s->part_id[i] == TOK__NONE) continue;
      ids[k] = s->part_id[i];
      if (offsets) offsets[2 * k] = i, offsets[2 * k + 1] = s->part_next[i];
      k++;
    }
  }
  *n_out = k;
  return TOK_OK;
}

static tok_err encode_word(const tok__model *m, tok_scratch *s, const uint8_t *piece,
                           size_t piece_len, uint32_t *ids, uint32_t *offsets, size_t *n_out,
                           tok_error *err)
{
  uint32_t id = tok__bpe_whole(m, piece, piece_len);
  if (id != TOK__NONE) {
    s->stats.direct_hits++;
    ids[0] = id;
    if (offsets) offsets[0] = 0, offsets[1] = (uint32_t)piece_len;
    *n_out = 1;
    return TOK_OK;
  }
  return merge_piece(m, s, piece, piece_len, MERGE_AUTO, ids, offsets, n_out, err);
}

/* Is a piece encoded word by word (tok__model.split_words; short pieces are not worth it)? */
static bool by_words(const tok__model *m, size_t piece_len) { return m->split_words && piece_len > 32; }

/* Is p[i] the start of a word mark that no token joins to the character before it? */
static bool word_start(const tok__model *m, const uint8_t *p, size_t i, size_t n)
{
  if (i == 0 || i + 3 > n || p[i] != 0xE2 || p[i + 1] != 0x96 || p[i + 2] != 0x81) return false;
  size_t q = i - 1;
  while (q > 0 && (p[q] & 0xC0) == 0x80) q--;
  size_t r = q;
  uint32_t c = tok__utf8_next(p, n, &r);
  if (c == 0x2581) return false;
  for (uint8_t k = 0; k < m->n_sticky; k++)
    if (m->sticky[k] == c) return false;
  return true;
}

tok_err tok__bpe_encode_piece(const tok__model *m, tok_scratch *s, const uint8_t *piece,
                              size_t piece_len, uint32_t *ids, uint32_t *offsets,
                              size_t *n_out, tok_error *err)
{
  if (!by_words(m, piece_len))
    return encode_word(m, s, piece, piece_len, ids, offsets, n_out, err);
  size_t total = 0, start = 0;
  for (size_t i = 1; i <= piece_len; i++) {
    if (i < piece_len && !word_start(m, piece, i, piece_len)) continue;
    uint32_t *offs = offsets ? offsets + 2 * total : NULL;
    struct tok__piece_entry want, *e = tok__piece_find(s, m, piece + start, i - start, &want);
    size_t k = tok__piece_cached(s, e, &want, i - start, ids + total, offs);
    if (!k) {
      tok_err rc = encode_word(m, s, piece + start, i - start, ids + total, offs, &k, err);
      if (rc != TOK_OK) {
        if (err && err->pos != TOK_NO_POS) err->pos += start;
        return rc;
      }
      tok__piece_remember(e, &want, ids + total, k, offs && offs[0] == 0 && offs[1] == i - start);
    }
    if (offsets)
      for (size_t j = 0; j < k; j++) offsets[2 * (total + j)] += (uint32_t)start,
                                     offsets[2 * (total + j) + 1] += (uint32_t)start;
    total += k;
    start = i;
  }
  *n_out = total;
  return TOK_OK;
}

tok_err tok__bpe_encode_rest(const tok__model *m, tok_scratch *s, const uint8_t *piece,
                             size_t piece_len, uint32_t *ids, uint32_t *offsets, size_t *n_out,
                             tok_error *err)
{
  if (by_words(m, piece_len)) return tok__bpe_encode_piece(m, s, piece, piece_len, ids, offsets, n_out, err);
  return merge_piece(m, s, piece, piece_len, MERGE_AUTO, ids, offsets, n_out, err);
}

tok_err tok__bpe_merge_only(const tok__model *m, tok_scratch *s, const uint8_t *piece,
                            size_t piece_len, uint32_t *ids, size_t *n_out)
{
  return merge_piece(m, s, piece, piece_len, MERGE_AUTO, ids, NULL, n_out, NULL);
}

tok_err tok__bpe_encode_piece_scan(const tok__model *m, tok_scratch *s, const uint8_t *piece,
                                   size_t piece_len, uint32_t *ids, size_t *n_out)
{
  if (piece_len > TOK__LONG_PIECE) return TOK_EINVAL;
  return merge_piece(m, s, piece, piece_len, MERGE_SCAN, ids, NULL, n_out, NULL);
}

tok_err tok__bpe_encode_piece_bt(const tok__model *m, tok_scratch *s, const uint8_t *piece,
                                 size_t piece_len, uint32_t *ids, size_t *n_out)
{
  const tok__bt *bt = tok__bt_get(m, true);
  if (!bt || piece_len == 0) return TOK_EINVAL;
  if (tok__scratch_fit(s, piece_len) != TOK_OK) return TOK_ENOMEM;
  size_t k = tok__bt_encode(m, bt, s, piece, piece_len, ids, NULL);
  if (k == SIZE_MAX) return TOK_EINVAL;
  *n_out = k;
  return TOK_OK;
}

tok_err tok__bpe_encode_piece_heap(const tok__model *m, tok_scratch *s, const uint8_t *piece,
                                   size_t piece_len, uint32_t *ids, size_t *n_out)
{
  return merge_piece(m, s, piece, piece_len, MERGE_HEAP, ids, NULL, n_out, NULL);
}
