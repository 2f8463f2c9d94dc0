/*
 * utf8.c — UTF-8 validation, lossy repair and "complete prefix" for streaming decode.
 *
 * Validity follows Unicode's Table 3-7 (no overlongs, no surrogates, nothing above
 * U+10FFFF). Repair replaces each *maximal subpart* of an ill-formed sequence by one
 * U+FFFD, the practice Unicode recommends and TextDecoder and Python both follow, so our
 * lossy output matches what clients of those produce byte for byte.
 */
#include <string.h>

#include "tok.h"

static const char REPLACEMENT[3] = {(char)0xEF, (char)0xBF, (char)0xBD};

/* Length (1-4) of the well-formed sequence at s[0], or 0 when there is none; then *bad is
 * the length of the maximal subpart to replace and *truncated says whether the input
 * merely ended inside a sequence that could still become valid. */
static size_t seq_len(const uint8_t *s, size_t avail, size_t *bad, int *truncated)
{
  uint8_t c = s[0], lo = 0x80, hi = 0xBF;
  size_t need;
  *truncated = 0;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) need = 1;
  else if (c == 0xE0) need = 2, lo = 0xA0;
  else if (c >= 0xE1 && c <= 0xEC) need = 2;
  else if (c == 0xED) need = 2, hi = 0x9F;
  else if (c == 0xEE || c == 0xEF) need = 2;
  else if (c == 0xF0) need = 3, lo = 0x90;
  else if (c >= 0xF1 && c <= 0xF3) need = 3;
  else if (c == 0xF4) need = 3, hi = 0x8F;
  else {
    *bad = 1;
    return 0;
  }
  for (size_t i = 1; i <= need; i++) {
    if (i >= avail) {
      *bad = i;
      *truncated = 1;
      return 0;
    }
    if (s[i] < lo || s[i] > hi) {
      *bad = i;
      return 0;
    }
    lo = 0x80, hi = 0xBF;
  }
  return need + 1;
}

bool tok_utf8_valid(const char *text, size_t len, size_t *bad_pos)
{
  const uint8_t *s = (const uint8_t *)text;
  size_t i = 0;
  while (i < len) {
    /* ASCII runs dominate most text: test 8 bytes at a time */
    while (i + 8 <= len) {
      uint64_t w;
      memcpy(&w, s + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    /* then a character at a time, until an ASCII byte sends it back to the runs */
    while (i < len) {
      uint8_t c = s[i];
      if (c < 0x80) {
        i++;
        break;
      }
      /* the common two- and three-byte forms (Cyrillic, Greek, ...; CJK, ...) inline: any
       * lead C2-DF with a continuation byte; E1-EC or EE-EF with two (E0, ED need range
       * checks on the second byte: seq_len) */
      if (c >= 0xC2 && c <= 0xDF && i + 1 < len && (s[i + 1] & 0xC0) == 0x80) {
        i += 2;
        continue;
      }
      if (c >= 0xE1 && c <= 0xEF && c != 0xED && i + 2 < len && (s[i + 1] & 0xC0) == 0x80 &&
          (s[i + 2] & 0xC0) == 0x80) {
        i += 3;
        continue;
      }
      size_t bad;
      int truncated;
      size_t n = seq_len(s + i, len - i, &bad, &truncated);
      if (n == 0) {
        if (bad_pos) *bad_pos = i;
        return false;
      }
      i += n;
    }
  }
  return true;
}

tok_err tok_utf8_append_lossy(tok_buf *out, const char *text, size_t len)
{
  const uint8_t *s = (const uint8_t *)text;
  size_t run = 0, i = 0;
  tok_err rc;
  if (len == 0) return TOK_OK; /* text may be NULL then */
  while (i < len) {
    size_t bad;
    int truncated;
    size_t n = seq_len(s + i, len - i, &bad, &truncated);
    if (n > 0) {
      i += n;
      continue;
    }
    if ((rc = tok_buf_append(out, s + run, i - run)) != TOK_OK) return rc;
    if ((rc = tok_buf_append(out, REPLACEMENT, sizeof REPLACEMENT)) != TOK_OK) return rc;
    i += bad;
    run = i;
  }
  return tok_buf_append(out, s + run, len - run);
}

size_t tok_utf8_complete_len(const char *text, size_t len)
{
  const uint8_t *s = (const uint8_t *)text;
  for (size_t back = 1; back <= 3 && back <= len; back++) {
    uint8_t c = s[len - back];
    if (c < 0x80) return len;          /* ASCII ends any sequence */
    if (c < 0xC0) continue;            /* continuation byte: look further back */
    size_t bad;
    int truncated;
    size_t n = seq_len(s + len - back, back, &bad, &truncated);
    return (n == 0 && truncated) ? len - back : len;
  }
  return len;
}
