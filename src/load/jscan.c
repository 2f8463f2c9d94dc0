/*
 * jscan.c — a pull scanner for JSON text, for the large parts of tokenizer.json.
 *
 * A tokenizer.json is 10-35 MB, almost all of it the vocabulary (a string -> id object)
 * and the merges (a list of strings or pairs). Building a cJSON tree of that costs about
 * 440 ms and 220 MB for Gemma 3's file; scanning it in place and handing each string to
 * the model builder costs a fraction. The small sections (normalizer, pre-tokenizer, ...)
 * are cut out with tok__js_skip and parsed by cJSON, where a tree is convenient.
 *
 * Strings are decoded into a caller's buffer by the tree's one JSON string reader
 * (common/json_str.c: escapes, \u surrogate pairs; a lone surrogate is an error, as in
 * serde_json). Errors carry the byte offset in the file.
 */
#include <stdio.h>
#include <stdlib.h>

#include "load/jscan.h"

#include "common/json_str.h"

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

tok_err tok__js_string(tok__js *js, tok_buf *out)
{
  if (!tok__js_eat(js, '"')) return tok__js_fail(js, "expected a string");
  const char *stop;
  bool plain;
  tok__jstr_err e = tok__jstr_scan(js->p, js->end, &stop, &plain);
  if (!e) {
    /* the decoded string is at most as long as the literal */
    size_t n = (size_t)(stop - js->p);
    if (tok_buf_reserve(out, n + 1) != TOK_OK) return tok__nomem(js->err); /* + 1: never NULL, even for "" */
    if (plain) memcpy(out->data + out->len, js->p, n);
    else e = tok__jstr_decode(js->p, js->end, out->data + out->len, &n, &stop);
    if (!e) {
      out->len += n;
      js->p = stop + 1;
      return TOK_OK;
    }
  }
  js->p = stop;
  return tok__js_fail(js, tok__jstr_why(e));
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
