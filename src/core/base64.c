/*
 * base64.c — standard base64 (RFC 4648, padded): rank files store tokens in it, and the
 * service uses it for exact bytes and streaming tails.
 */
#include "core/internal.h"

/* base64 digit values, -1 for bytes outside the alphabet */
static const int8_t B64[256] = {
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 62, -1, -1, -1, 63,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, -1,
    -1,  0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 14,
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, -1,
    -1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
};

static int b64_value(uint8_t c) { return B64[c]; }

long tok_base64_decoded_len(const char *s, size_t len)
{
  if (len == 0 || len % 4 != 0) return -1;
  size_t pad = (s[len - 1] == '=') + (s[len - 1] == '=' && s[len - 2] == '=');
  for (size_t i = 0; i < len - pad; i++)
    if (b64_value((uint8_t)s[i]) < 0) return -1;
  return (long)(len / 4 * 3 - pad);
}

void tok__base64_decode_unchecked(const char *s, size_t len, uint8_t *out)
{
  size_t o = 0;
  for (size_t i = 0; i < len; i += 4) {
    uint32_t v = (uint32_t)b64_value((uint8_t)s[i]) << 18 | (uint32_t)b64_value((uint8_t)s[i + 1]) << 12;
    out[o++] = (uint8_t)(v >> 16);
    if (s[i + 2] == '=') break;
    v |= (uint32_t)b64_value((uint8_t)s[i + 2]) << 6;
    out[o++] = (uint8_t)(v >> 8);
    if (s[i + 3] == '=') break;
    v |= (uint32_t)b64_value((uint8_t)s[i + 3]);
    out[o++] = (uint8_t)v;
  }
}

tok_err tok_base64_decode(const char *s, size_t len, tok_buf *out)
{
  if (len == 0) return TOK_OK;
  long n = tok_base64_decoded_len(s, len);
  if (n < 0) return TOK_EINVAL;
  tok_err rc = tok_buf_reserve(out, (size_t)n);
  if (rc != TOK_OK) return rc;
  tok__base64_decode_unchecked(s, len, (uint8_t *)out->data + out->len);
  out->len += (size_t)n;
  return TOK_OK;
}

tok_err tok_base64_encode(const void *bytes, size_t len, tok_buf *out)
{
  static const char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const uint8_t *in = bytes;
  tok_err rc = tok_buf_reserve(out, (len + 2) / 3 * 4);
  if (rc != TOK_OK) return rc;
  char *o = out->data + out->len;
  for (size_t i = 0; i < len; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0) |
                 (i + 2 < len ? in[i + 2] : 0);
    *o++ = alphabet[v >> 18];
    *o++ = alphabet[(v >> 12) & 63];
    *o++ = i + 1 < len ? alphabet[(v >> 6) & 63] : '=';
    *o++ = i + 2 < len ? alphabet[v & 63] : '=';
  }
  out->len = (size_t)(o - out->data);
  return TOK_OK;
}
