/*
 * bpe.c — the byte-pair merge loop: turns one pre-tokenizer piece into ranks.
 *
 * Semantics are tiktoken's: start from single bytes; repeatedly merge the adjacent pair
 * whose concatenation has the lowest rank (the leftmost one among equals) until no pair is
 * a token. Two implementations give the same result:
 *
 *   - scan: arrays on the stack, a linear scan for the minimum after every merge. O(n^2)
 *     but tiny constants; used for pieces up to TOK__LONG_PIECE bytes, i.e. nearly all.
 *   - heap: a doubly linked list of parts plus a binary min-heap of (rank, position)
 *     candidates with lazy deletion; O(n log n). Used for long pieces (runs of one
 *     character, base64, whitespace), where tiktoken's scan takes seconds.
 *
 * Why lazy deletion is exact: a candidate is keyed by the byte position where its left
 * part starts. The pair starting there only ever grows (its left part absorbs neighbours
 * on the right), so its bytes, and with them its rank, never repeat: a heap entry whose
 * rank differs from the pair's current rank is stale and is skipped. Ordering entries by
 * (rank, position) reproduces "lowest rank, leftmost first".
 *
 * Neither allocates: the heap variant uses arrays the caller sized in the scratch.
 */
#include <stdlib.h>

#include "internal.h"

#define DEAD UINT32_MAX

tok_err tok__scratch_fit(tok_scratch *s, size_t piece_len)
{
  if (piece_len <= s->piece_cap) return TOK_OK;
  size_t cap = s->piece_cap ? s->piece_cap : 1024;
  while (cap < piece_len) cap *= 2;
  if (cap > UINT32_MAX / 4) return TOK_ELIMIT;
  uint32_t *a = realloc(s->part_self, (cap + 1) * sizeof *a);
  if (a) s->part_self = a;
  uint32_t *b = realloc(s->part_pair, (cap + 1) * sizeof *b);
  if (b) s->part_pair = b;
  uint32_t *c = realloc(s->part_next, (cap + 1) * sizeof *c);
  if (c) s->part_next = c;
  uint32_t *d = realloc(s->part_prev, (cap + 1) * sizeof *d);
  if (d) s->part_prev = d;
  uint64_t *h = realloc(s->heap, 3 * (cap + 1) * sizeof *h);
  if (h) s->heap = h;
  if (!a || !b || !c || !d || !h) return TOK_ENOMEM;
  s->piece_cap = cap;
  return TOK_OK;
}

static tok_err missing_byte(tok_error *err, uint8_t byte)
{
  return tok__fail(err, TOK_EBYTE_MISSING, TOK_NO_POS, TOK_NO_POS,
                   "byte 0x%02x has no token in this vocabulary", byte);
}

/* Both variants need every single byte of the piece to be a token. */
static tok_err check_bytes(const tok__vocab *v, const uint8_t *p, size_t n, tok_error *err)
{
  for (size_t i = 0; i < n; i++)
    if (v->byte_rank[p[i]] == TOK__NO_RANK) return missing_byte(err, p[i]);
  return TOK_OK;
}

tok_err tok__bpe_encode_piece_scan(const tok__vocab *v, tok_scratch *s, const uint8_t *p,
                                   size_t n, uint32_t *ids, size_t *n_out)
{
  /* start[i]: first byte of part i (start[parts] == n); self[i]: rank of part i;
   * pair[i]: rank of part i joined with part i + 1 */
  uint32_t start[TOK__LONG_PIECE + 1], self[TOK__LONG_PIECE], pair[TOK__LONG_PIECE];
  size_t parts = n;
  if (n > TOK__LONG_PIECE) return TOK_EINVAL;
  for (size_t i = 0; i < n; i++) {
    start[i] = (uint32_t)i;
    self[i] = v->byte_rank[p[i]];
  }
  start[n] = (uint32_t)n;
  for (size_t i = 0; i + 1 < n; i++) pair[i] = tok__pair_rank(v, p + i);

  while (parts > 1) {
    uint32_t best = TOK__NO_RANK;
    size_t at = 0;
    for (size_t i = 0; i + 1 < parts; i++)
      if (pair[i] < best) best = pair[i], at = i;
    if (best == TOK__NO_RANK) break;
    s->stats.merge_steps++;
    /* part at absorbs part at + 1 */
    self[at] = best;
    for (size_t i = at + 1; i + 1 < parts; i++) {
      start[i] = start[i + 1];
      self[i] = self[i + 1];
      pair[i] = pair[i + 1];
    }
    start[parts - 1] = start[parts];
    parts--;
    if (at + 1 < parts) {
      pair[at] = tok__rank_lookup(v, p + start[at], start[at + 2] - start[at]);
      s->stats.rank_lookups++;
    }
    if (at > 0) {
      pair[at - 1] = tok__rank_lookup(v, p + start[at - 1], start[at + 1] - start[at - 1]);
      s->stats.rank_lookups++;
    }
  }
  for (size_t i = 0; i < parts; i++) ids[i] = self[i];
  *n_out = parts;
  return TOK_OK;
}

/* min-heap of (rank << 32 | position) */
static void heap_push(uint64_t *heap, size_t *len, uint64_t key)
{
  size_t i = (*len)++;
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (heap[parent] <= key) break;
    heap[i] = heap[parent];
    i = parent;
  }
  heap[i] = key;
}

static uint64_t heap_pop(uint64_t *heap, size_t *len)
{
  uint64_t top = heap[0], last = heap[--(*len)];
  size_t i = 0, n = *len;
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n && heap[child + 1] < heap[child]) child++;
    if (last <= heap[child]) break;
    heap[i] = heap[child];
    i = child;
  }
  if (n > 0) heap[i] = last;
  return top;
}

tok_err tok__bpe_encode_piece_heap(const tok__vocab *v, tok_scratch *s, const uint8_t *p,
                                   size_t n, uint32_t *ids, size_t *n_out)
{
  /* Part i starts at byte i; next[i] is the start of the following part (n at the end),
   * prev[i] the previous one (DEAD once absorbed), self[i] the part's own rank and pair[i]
   * the rank of the pair it starts. */
  uint32_t *next = s->part_next, *prev = s->part_prev, *self = s->part_self;
  uint32_t *pair = s->part_pair;
  uint64_t *heap = s->heap;
  size_t heap_len = 0;
  if (n > s->piece_cap) return TOK_EINVAL;

  for (size_t i = 0; i < n; i++) {
    next[i] = (uint32_t)(i + 1);
    prev[i] = i == 0 ? DEAD - 1 : (uint32_t)(i - 1); /* DEAD - 1: "no previous part" */
    self[i] = v->byte_rank[p[i]];
  }
  for (size_t i = 0; i + 1 < n; i++) {
    pair[i] = tok__pair_rank(v, p + i);
    if (pair[i] != TOK__NO_RANK) heap_push(heap, &heap_len, (uint64_t)pair[i] << 32 | i);
  }
  pair[n - 1] = TOK__NO_RANK;
  s->stats.heap_ops += heap_len;

  while (heap_len > 0) {
    uint64_t top = heap_pop(heap, &heap_len);
    s->stats.heap_ops++;
    uint32_t rank = (uint32_t)(top >> 32), i = (uint32_t)top;
    if (prev[i] == DEAD || pair[i] != rank) continue; /* stale */
    s->stats.merge_steps++;
    uint32_t j = next[i];
    self[i] = rank;
    next[i] = next[j];
    prev[j] = DEAD;
    if (next[j] < n) prev[next[j]] = i;
    pair[i] = TOK__NO_RANK;
    if (next[i] < n) {
      pair[i] = tok__rank_lookup(v, p + i, next[next[i]] - i);
      s->stats.rank_lookups++;
      if (pair[i] != TOK__NO_RANK) {
        heap_push(heap, &heap_len, (uint64_t)pair[i] << 32 | i);
        s->stats.heap_ops++;
      }
    }
    if (prev[i] != DEAD - 1) {
      uint32_t h = prev[i];
      pair[h] = tok__rank_lookup(v, p + h, next[i] - h);
      s->stats.rank_lookups++;
      if (pair[h] != TOK__NO_RANK) {
        heap_push(heap, &heap_len, (uint64_t)pair[h] << 32 | h);
        s->stats.heap_ops++;
      }
    }
  }
  size_t count = 0;
  for (uint32_t i = 0; i < n; i = next[i]) ids[count++] = self[i];
  *n_out = count;
  return TOK_OK;
}

tok_err tok__bpe_encode_piece(const tok__vocab *v, tok_scratch *s, const uint8_t *piece,
                              size_t piece_len, uint32_t *ids, uint32_t *offsets,
                              uint32_t base, size_t *n_out, tok_error *err)
{
  tok_err rc = check_bytes(v, piece, piece_len, err);
  if (rc != TOK_OK) return rc;
  rc = piece_len <= TOK__LONG_PIECE
           ? tok__bpe_encode_piece_scan(v, s, piece, piece_len, ids, n_out)
           : tok__bpe_encode_piece_heap(v, s, piece, piece_len, ids, n_out);
  if (rc != TOK_OK || !offsets) return rc;
  /* token k starts where the bytes of tokens 0..k-1 end */
  uint32_t at = base;
  for (size_t k = 0; k < *n_out; k++) {
    offsets[k] = at;
    at += v->off[ids[k] + 1] - v->off[ids[k]];
  }
  return TOK_OK;
}
