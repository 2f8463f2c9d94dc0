/*
 * added.c — finds added tokens (special or not: "<|endoftext|>", "<start_of_turn>", the
 * whitespace tokens of Gemma, ...) in text before the rest of the pipeline sees it.
 *
 * Semantics are Hugging Face's AddedVocabulary::find_matches: over all tokens of a group,
 * matches are taken leftmost first and longest among those starting at the same place
 * (Aho-Corasick LeftmostLongest), and scanning resumes after each match. A match of a
 * special token that the caller does not allow, or of a single_word token inside a word,
 * is skipped together with the text it covered. lstrip/rstrip widen a match over the
 * whitespace before/after it. tiktoken's specials never overlap each other, so its
 * leftmost-first regex gives the same result.
 *
 * The tokens of a group are kept in a byte trie (children sorted per node, stored as one
 * array). A scan visits only positions whose byte starts some token (memchr when a single
 * byte starts them all, as with OpenAI's "<|...|>"), and walks the trie from there.
 */
#include <stdlib.h>

#include "core/internal.h"

void tok__matcher_free(tok__matcher *mt)
{
  free(mt->child_start);
  free(mt->child_byte);
  free(mt->child_node);
  free(mt->terminal);
  memset(mt, 0, sizeof *mt);
  mt->single_first = -1;
}

typedef struct build_node {
  uint32_t first_child, next_sibling, terminal;
  uint8_t byte;
} build_node;

tok_err tok__matcher_build(tok__matcher *mt, const tok__added *added, size_t n_added,
                           bool normalized_group, tok_error *err)
{
  memset(mt, 0, sizeof *mt);
  mt->single_first = -1;
  size_t cap = 1;
  for (size_t i = 0; i < n_added; i++)
    if (added[i].normalized == normalized_group) cap += added[i].match_len;
  build_node *nodes = malloc(cap * sizeof *nodes);
  if (!nodes) return tok__nomem(err);
  uint32_t n = 1;
  nodes[0] = (build_node){TOK__NONE, TOK__NONE, TOK__NONE, 0};
  for (size_t i = 0; i < n_added; i++) {
    const tok__added *a = &added[i];
    if (a->normalized != normalized_group || a->match_len == 0) continue;
    uint32_t at = 0;
    for (uint32_t k = 0; k < a->match_len; k++) {
      uint8_t byte = (uint8_t)a->match[k];
      uint32_t c = nodes[at].first_child, *link = &nodes[at].first_child;
      /* children kept sorted by byte */
      while (c != TOK__NONE && nodes[c].byte < byte) link = &nodes[c].next_sibling, c = *link;
      if (c == TOK__NONE || nodes[c].byte != byte) {
        nodes[n] = (build_node){TOK__NONE, c, TOK__NONE, byte};
        *link = n;
        c = n++;
      }
      at = c;
    }
    /* the same text twice: the later entry wins, as in Hugging Face's map */
    nodes[at].terminal = (uint32_t)i;
    mt->first[(uint8_t)a->match[0] >> 6] |= 1ull << ((uint8_t)a->match[0] & 63);
  }
  mt->n_nodes = n;
  mt->child_start = malloc(((size_t)n + 1) * sizeof *mt->child_start);
  mt->child_byte = malloc((size_t)n * sizeof *mt->child_byte);
  mt->child_node = malloc((size_t)n * sizeof *mt->child_node);
  mt->terminal = malloc((size_t)n * sizeof *mt->terminal);
  if (!mt->child_start || !mt->child_byte || !mt->child_node || !mt->terminal) {
    free(nodes);
    tok__matcher_free(mt);
    return tok__nomem(err);
  }
  /* flatten: node ids stay, children of node i become a contiguous sorted range */
  uint32_t k = 0;
  for (uint32_t i = 0; i < n; i++) {
    mt->child_start[i] = k;
    mt->terminal[i] = nodes[i].terminal;
    for (uint32_t c = nodes[i].first_child; c != TOK__NONE; c = nodes[c].next_sibling) {
      mt->child_byte[k] = nodes[c].byte;
      mt->child_node[k++] = c;
    }
  }
  mt->child_start[n] = k;
  free(nodes);
  int count = 0;
  for (int b = 0; b < 256; b++)
    if ((mt->first[b >> 6] >> (b & 63)) & 1) mt->single_first = b, count++;
  if (count != 1) mt->single_first = -1;
  return TOK_OK;
}

static inline uint32_t child(const tok__matcher *mt, uint32_t node, uint8_t byte)
{
  uint32_t lo = mt->child_start[node], hi = mt->child_start[node + 1];
  while (lo < hi) {
    uint32_t mid = (lo + hi) / 2;
    if (mt->child_byte[mid] < byte) lo = mid + 1;
    else hi = mid;
  }
  return lo < mt->child_start[node + 1] && mt->child_byte[lo] == byte ? mt->child_node[lo] : TOK__NONE;
}

/* The character before text[at] (valid UTF-8 assumed), or 0 at the start. */
static uint32_t char_before(const uint8_t *text, size_t at)
{
  if (at == 0) return 0;
  size_t i = at - 1;
  while (i > 0 && (text[i] & 0xC0) == 0x80) i--;
  return tok__utf8_next(text, at, &i);
}

long tok__added_next(const tok__matcher *mt, const tok__added *added,
                     const tok_special_set *allowed, const uint8_t *text, size_t len,
                     size_t from, size_t floor, size_t *start, size_t *end)
{
  if (mt->n_nodes <= 1) return -1;
  size_t i = from;
  while (i < len) {
    if (mt->single_first >= 0) {
      const uint8_t *hit = memchr(text + i, mt->single_first, len - i);
      if (!hit) return -1;
      i = (size_t)(hit - text);
    } else if (!((mt->first[text[i] >> 6] >> (text[i] & 63)) & 1)) {
      i++;
      continue;
    }
    uint32_t node = 0, best = TOK__NONE;
    size_t best_end = i;
    for (size_t k = i; k < len; k++) {
      node = child(mt, node, text[k]);
      if (node == TOK__NONE) break;
      if (mt->terminal[node] != TOK__NONE) best = mt->terminal[node], best_end = k + 1;
    }
    if (best == TOK__NONE) {
      i++;
      continue;
    }
    const tok__added *a = &added[best];
    bool skip = a->special && allowed && !tok_special_set_has(allowed, a->special_index);
    if (!skip && a->single_word) {
      size_t j = best_end;
      bool word_before = tok__is_word(char_before(text, i)) && i > 0;
      bool word_after = best_end < len && tok__is_word(tok__utf8_next(text, len, &j));
      skip = word_before || word_after;
    }
    if (skip) {
      /* the match is dropped together with the text it covered */
      i = best_end;
      continue;
    }
    size_t s = i, e = best_end;
    if (a->lstrip) {
      while (s > floor) {
        size_t p = s - 1;
        while (p > 0 && (text[p] & 0xC0) == 0x80) p--;
        size_t q = p;
        if (!tok__is_whitespace(tok__utf8_next(text, len, &q))) break;
        s = p;
      }
      if (s < floor) s = floor;
    }
    if (a->rstrip)
      while (e < len) {
        size_t q = e;
        if (!tok__is_whitespace(tok__utf8_next(text, len, &q))) break;
        e = q;
      }
    *start = s;
    *end = e;
    return (long)best;
  }
  return -1;
}
