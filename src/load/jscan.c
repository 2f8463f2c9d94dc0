/*
 * jscan.c — a pull scanner for JSON text, for the large parts of tokenizer.json.
 *
 * A tokenizer.json is 10-35 MB, almost all of it the vocabulary (a string -> id object)
 * and the merges (a list of strings or pairs). Building a cJSON tree of that costs about
 * 440 ms and 220 MB for Gemma 3's file; scanning it in place and handing each string to
 * the model builder costs a fraction. The small sections (normalizer, pre-tokenizer, ...)
 * are cut out with tok__js_skip and parsed by cJSON, where a tree is convenient.
 *
 * Strings are decoded into a caller's buffer (escapes, \u surrogate pairs) and checked to
 * be valid UTF-8; a lone surrogate is an error, as in serde_json. Errors carry the byte
 * offset in the file.
 */
#include <stdio.h>
#include <stdlib.h>

#include "load/jscan.h"

tok_err tok__js_fail(tok__js *js, const char *what)
{
  return tok__fail(js->err, TOK_ETOKENIZER, (size_t)(js->p - js->start), TOK_NO_POS,
                   "%s: invalid JSON at byte %zu: %s", js->file, (size_t)(js->p - js->start), what);
}

int tok__js_peek(tok__js *js)
{
  while (js->p < js->end && (*js->p == ' ' || *js->p == '\n' || *js->p == '\r' || *js->p == '\t')) js->p++;
  return js->p < js->end ? (unsigned char)*js->p : -1;
}

bool tok__js_eat(tok__js *js, char c)
{
  if (tok__js_peek(js) != (unsigned char)c) return false;
  js->p++;
  return true;
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

static void put_utf8(tok_buf *out, uint32_t c)
{
  char *d = out->data + out->len;
  if (c < 0x80) d[0] = (char)c, out->len += 1;
  else if (c < 0x800) d[0] = (char)(0xC0 | c >> 6), d[1] = (char)(0x80 | (c & 0x3F)), out->len += 2;
  else if (c < 0x10000)
    d[0] = (char)(0xE0 | c >> 12), d[1] = (char)(0x80 | ((c >> 6) & 0x3F)), d[2] = (char)(0x80 | (c & 0x3F)),
    out->len += 3;
  else
    d[0] = (char)(0xF0 | c >> 18), d[1] = (char)(0x80 | ((c >> 12) & 0x3F)),
    d[2] = (char)(0x80 | ((c >> 6) & 0x3F)), d[3] = (char)(0x80 | (c & 0x3F)), out->len += 4;
}

tok_err tok__js_string(tok__js *js, tok_buf *out)
{
  if (!tok__js_eat(js, '"')) return tok__js_fail(js, "expected a string");
  const char *p = js->p;
  /* fast path: no escapes */
  const char *q = p;
  while (q < js->end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20) q++;
  if (tok_buf_reserve(out, (size_t)(q - p) + 8) != TOK_OK) return tok__nomem(js->err);
  memcpy(out->data + out->len, p, (size_t)(q - p));
  out->len += (size_t)(q - p);
  p = q;
  while (p < js->end && *p != '"') {
    if ((unsigned char)*p < 0x20) {
      js->p = p;
      return tok__js_fail(js, "control character in a string");
    }
    if (tok_buf_reserve(out, 8) != TOK_OK) return tok__nomem(js->err);
    if (*p != '\\') {
      out->data[out->len++] = *p++;
      continue;
    }
    if (p + 1 >= js->end) break;
    char e = p[1];
    p += 2;
    switch (e) {
    case '"': case '\\': case '/': out->data[out->len++] = e; break;
    case 'b': out->data[out->len++] = '\b'; break;
    case 'f': out->data[out->len++] = '\f'; break;
    case 'n': out->data[out->len++] = '\n'; break;
    case 'r': out->data[out->len++] = '\r'; break;
    case 't': out->data[out->len++] = '\t'; break;
    case 'u': {
      int u = js->end - p >= 4 ? hex4(p) : -1;
      if (u < 0) {
        js->p = p;
        return tok__js_fail(js, "bad \\u escape");
      }
      p += 4;
      uint32_t c = (uint32_t)u;
      if (c >= 0xD800 && c <= 0xDBFF) {
        int lo = js->end - p >= 6 && p[0] == '\\' && p[1] == 'u' ? hex4(p + 2) : -1;
        if (lo < 0xDC00 || lo > 0xDFFF) {
          js->p = p;
          return tok__js_fail(js, "lone surrogate in a \\u escape");
        }
        p += 6;
        c = 0x10000 + ((c - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
      } else if (c >= 0xDC00 && c <= 0xDFFF) {
        js->p = p;
        return tok__js_fail(js, "lone surrogate in a \\u escape");
      }
      put_utf8(out, c);
      break;
    }
    default:
      js->p = p - 1;
      return tok__js_fail(js, "bad escape");
    }
  }
  if (p >= js->end) {
    js->p = p;
    return tok__js_fail(js, "unterminated string");
  }
  js->p = p + 1;
  return TOK_OK;
}

tok_err tok__js_u32(tok__js *js, uint32_t *out)
{
  tok__js_peek(js);
  uint64_t v = 0;
  const char *p = js->p;
  while (p < js->end && *p >= '0' && *p <= '9' && v <= UINT32_MAX) v = v * 10 + (uint64_t)(*p++ - '0');
  if (p == js->p || v > UINT32_MAX || (p < js->end && (*p == '.' || *p == 'e' || *p == 'E')))
    return tok__js_fail(js, "expected a whole number below 2^32");
  js->p = p;
  *out = (uint32_t)v;
  return TOK_OK;
}

tok_err tok__js_skip(tok__js *js, const char **start, size_t *len)
{
  int c = tok__js_peek(js);
  const char *s = js->p;
  int depth = 0;
  if (c < 0) return tok__js_fail(js, "unexpected end");
  do {
    c = tok__js_peek(js);
    if (c == '"') {
      js->p++;
      while (js->p < js->end && *js->p != '"') js->p += *js->p == '\\' ? 2 : 1;
      if (js->p >= js->end) return tok__js_fail(js, "unterminated string");
      js->p++;
    } else if (c == '{' || c == '[') {
      depth++;
      js->p++;
    } else if (c == '}' || c == ']') {
      if (--depth < 0) return tok__js_fail(js, "unbalanced brackets");
      js->p++;
    } else if (c == ',' || c == ':') {
      if (depth == 0) break;
      js->p++;
    } else if (c < 0) {
      return tok__js_fail(js, "unexpected end");
    } else {
      /* a number or literal */
      while (js->p < js->end && !strchr(",:]} \n\r\t", *js->p)) js->p++;
    }
  } while (depth > 0);
  if (start) *start = s;
  if (len) *len = (size_t)(js->p - s);
  return TOK_OK;
}
