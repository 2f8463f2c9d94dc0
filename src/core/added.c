/*
 * special.c — finds special tokens ("<|endoftext|>", ...) in text.
 *
 * Encodings have a handful of special tokens, all starting with a few distinct bytes
 * (OpenAI's all start with '<'). When they share one first byte the scan is memchr for it,
 * which runs at memory speed; otherwise a 256-entry table of first bytes is consulted. At
 * each candidate the tokens are compared directly. Of two tokens matching at the same
 * place the longer wins, so a set never depends on manifest order.
 */
#include "internal.h"

long tok__special_find(const tok_encoding *enc, const tok_special_set *set, const uint8_t *text,
                       size_t len, size_t from, size_t *at)
{
  size_t n_special = enc->info.n_special;
  const tok_special_token *special = enc->info.special;
  if (n_special == 0) return -1;

  int single = enc->special_first_byte;
  size_t i = from;
  while (i < len) {
    if (single >= 0) {
      const uint8_t *hit = memchr(text + i, single, len - i);
      if (!hit) return -1;
      i = (size_t)(hit - text);
    } else if (!enc->special_first[text[i]]) {
      i++;
      continue;
    }
    long best = -1;
    for (size_t k = 0; k < n_special; k++) {
      if (set && !set->mask[k]) continue;
      size_t tl = special[k].text_len;
      if (tl <= len - i && memcmp(text + i, special[k].text, tl) == 0 &&
          (best < 0 || tl > special[best].text_len))
        best = (long)k;
    }
    if (best >= 0) {
      *at = i;
      return best;
    }
    i++;
  }
  return -1;
}
