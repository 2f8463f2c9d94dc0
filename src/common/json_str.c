/*
 * json_str.c — JSON string literals: finding their end and decoding their escapes, one
 * reader for the three places that read JSON (tokenizer.json, request bodies, the chat
 * engine's messages and tools), which had each written it.
 *
 * The rules are JSON's (RFC 8259) with serde_json's choice where JSON leaves one: a \u
 * escape of a lone surrogate is refused (it has no UTF-8), a surrogate pair becomes one
 * code point. The reader works on (pointer, end) text, never needs a NUL, and writes its
 * output where the caller says, in place if it likes: the service decodes request strings
 * inside the body it received; the loader appends to its buffers. A long string's text is
 * mostly plain bytes, so those are found eight at a time (tok__jstr_plain_run) and copied in
 * one go. Errors name the byte at fault; the caller words them into its own error.
 */
#include "common/json_str.h"

#include <stdint.h>
#include <string.h>

const char *tok__jstr_why(tok__jstr_err err)
{
  switch (err) {
  case TOK__JSTR_OK: return "no error";
  case TOK__JSTR_UNTERMINATED: return "unterminated string";
  case TOK__JSTR_CONTROL: return "control character in a string";
  case TOK__JSTR_BAD_ESCAPE: return "bad escape";
  case TOK__JSTR_BAD_U: return "bad \\u escape";
  case TOK__JSTR_SURROGATE: return "a \\u escape of a lone surrogate";
  }
  return "invalid string";
}

/* Eight bytes at a time: the lowest flagged byte of each test is exact (a borrow only
 * reaches bytes above it); bytes of 0x80 and up (UTF-8) are never flagged. */
size_t tok__jstr_plain_run(const char *p, size_t n)
{
  const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w, q, b;
    memcpy(&w, p + i, 8);
    q = w ^ (0x22 * ones), b = w ^ (0x5C * ones);
    uint64_t t = (((q - ones) & ~q) | ((b - ones) & ~b) | ((w - 0x20 * ones) & ~w)) & highs;
    if (t) return i + (size_t)(__builtin_ctzll(t) >> 3);
  }
  while (i < n && p[i] != '"' && p[i] != '\\' && (unsigned char)p[i] >= 0x20) i++;
  return i;
}

tok__jstr_err tok__jstr_scan(const char *s, const char *end, const char **stop, bool *plain)
{
  const char *r = s;
  *plain = true;
  for (;;) {
    r += tok__jstr_plain_run(r, (size_t)(end - r));
    if (r >= end) {
      *stop = end;
      return TOK__JSTR_UNTERMINATED;
    }
    unsigned char c = (unsigned char)*r;
    if (c == '"') break;
    if (c < 0x20) {
      *stop = r;
      return TOK__JSTR_CONTROL;
    }
    *plain = false; /* a backslash: it and the byte it escapes */
    r += end - r >= 2 ? 2 : 1;
  }
  *stop = r;
  return TOK__JSTR_OK;
}

static int hex4(const char *p)
{
  int v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= c - '0';
    else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
    else return -1;
  }
  return v;
}

/* cp as UTF-8 at w; returns the byte after it */
static char *put_utf8(char *w, uint32_t cp)
{
  if (cp < 0x80) *w++ = (char)cp;
  else if (cp < 0x800) *w++ = (char)(0xC0 | cp >> 6), *w++ = (char)(0x80 | (cp & 0x3F));
  else if (cp < 0x10000)
    *w++ = (char)(0xE0 | cp >> 12), *w++ = (char)(0x80 | ((cp >> 6) & 0x3F)), *w++ = (char)(0x80 | (cp & 0x3F));
  else
    *w++ = (char)(0xF0 | cp >> 18), *w++ = (char)(0x80 | ((cp >> 12) & 0x3F)),
    *w++ = (char)(0x80 | ((cp >> 6) & 0x3F)), *w++ = (char)(0x80 | (cp & 0x3F));
  return w;
}

tok__jstr_err tok__jstr_decode(const char *s, const char *end, char *out, size_t *out_len,
                               const char **stop)
{
  const char *r = s;
  char *w = out;
  tok__jstr_err err = TOK__JSTR_OK;
  for (;;) {
    size_t run = tok__jstr_plain_run(r, (size_t)(end - r));
    if (w != r) memmove(w, r, run);
    r += run, w += run;
    if (r >= end) {
      err = TOK__JSTR_UNTERMINATED;
      break;
    }
    unsigned char c = (unsigned char)*r;
    if (c == '"') break;
    if (c < 0x20) {
      err = TOK__JSTR_CONTROL;
      break;
    }
    /* a backslash */
    if (r + 1 >= end) {
      err = TOK__JSTR_UNTERMINATED;
      break;
    }
    char esc = r[1];
    r += 2;
    switch (esc) {
    case '"': case '\\': case '/': *w++ = esc; break;
    case 'b': *w++ = '\b'; break;
    case 'f': *w++ = '\f'; break;
    case 'n': *w++ = '\n'; break;
    case 'r': *w++ = '\r'; break;
    case 't': *w++ = '\t'; break;
    case 'u': {
      int u = end - r >= 4 ? hex4(r) : -1;
      if (u < 0) {
        err = TOK__JSTR_BAD_U;
        break;
      }
      r += 4;
      uint32_t cp = (uint32_t)u;
      if (cp >= 0xD800 && cp <= 0xDBFF) {
        int lo = end - r >= 6 && r[0] == '\\' && r[1] == 'u' ? hex4(r + 2) : -1;
        if (lo < 0xDC00 || lo > 0xDFFF) {
          err = TOK__JSTR_SURROGATE;
          break;
        }
        r += 6;
        cp = 0x10000 + ((cp - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
      } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
        err = TOK__JSTR_SURROGATE;
        break;
      }
      /* UTF-8 is never longer than the escape it came from: w stays behind r */
      w = put_utf8(w, cp);
      break;
    }
    default:
      r--; /* at the escaped byte */
      err = TOK__JSTR_BAD_ESCAPE;
      break;
    }
    if (err) break;
  }
  *stop = r;
  if (!err) *out_len = (size_t)(w - out);
  return err;
}
