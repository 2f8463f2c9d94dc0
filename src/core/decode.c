/*
 * decode.c — the decoder stage: ids back to text.
 *
 * Hugging Face decodes by turning ids into their token strings, running the decoder
 * steps over that list (each step maps a list of strings to a list: ByteLevel, Metaspace,
 * Replace, ByteFallback, Fuse, Strip) and joining the result. That is done here over two
 * scratch buffers that take turns. The common case needs none of it: when the decoder is
 * ByteLevel alone over a byte-level model (and for tiktoken), each token's bytes are known
 * at load (tok_token_bytes) and the text is their concatenation with invalid UTF-8
 * replaced (Rust's from_utf8_lossy and tiktoken's errors="replace" both use the
 * maximal-subpart rule, as tok_utf8_append_lossy does).
 *
 * "raw" decoding gives the exact bytes instead: the same steps, without replacing
 * invalid UTF-8 (ByteLevel's repair, ByteFallback's U+FFFD per byte).
 */
#include <stdlib.h>

#include "core/internal.h"

/* A list of token strings: toks[2k], toks[2k+1] = offset and length in buf. */
typedef struct list {
  tok_buf *buf;
  uint32_t *toks;
  size_t n;
} list;

static tok_err list_push(list *l, const void *bytes, size_t len)
{
  uint32_t off = (uint32_t)l->buf->len;
  tok_err rc = tok_buf_append(l->buf, bytes, len);
  if (rc != TOK_OK) return rc;
  l->toks[2 * l->n] = off;
  l->toks[2 * l->n + 1] = (uint32_t)len;
  l->n++;
  return TOK_OK;
}

/* Extends the last token of l by bytes (the token must be the last thing in buf). */
static tok_err list_extend(list *l, const void *bytes, size_t len)
{
  tok_err rc = tok_buf_append(l->buf, bytes, len);
  if (rc == TOK_OK) l->toks[2 * l->n - 1] += (uint32_t)len;
  return rc;
}

static size_t char_len(uint8_t lead)
{
  return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

/* The string of an added token as Hugging Face's decoder receives it. */
static void added_string(const tok__added *a, const char **s, size_t *len)
{
  *s = a->normalized ? a->match : a->content;
  *len = a->normalized ? a->match_len : a->content_len;
}

/* Appends the Hugging Face string of a model token: its byte-level spelling, or its bytes
 * (char-level models, literal entries). */
static tok_err model_string(const tok__model *m, uint32_t id, tok_buf *out)
{
  const uint8_t *b = m->bytes + m->off[id];
  size_t len = m->off[id + 1] - m->off[id];
  if (!m->byte_level || (m->literal && tok__bit(m->literal, id))) return tok_buf_append(out, b, len);
  tok_err rc = tok_buf_reserve(out, 2 * len);
  if (rc != TOK_OK) return rc;
  for (size_t i = 0; i < len; i++) {
    uint32_t c = tok__byte_char(b[i]);
    if (c < 0x80) {
      out->data[out->len++] = (char)c;
    } else {
      out->data[out->len++] = (char)(0xC0 | c >> 6);
      out->data[out->len++] = (char)(0x80 | (c & 0x3F));
    }
  }
  return TOK_OK;
}

tok_err tok_token_string(const tok_encoding *enc, uint32_t id, tok_buf *out)
{
  const tok__added *a = tok__added_of(enc, id);
  if (a) {
    const char *s;
    size_t len;
    added_string(a, &s, &len);
    return tok_buf_append(out, s, len);
  }
  const tok__model *m = enc->model;
  if (id >= m->id_end || m->off[id + 1] == m->off[id])
    return TOK_EUNKNOWN_TOKEN;
  return model_string(m, id, out);
}

const char *tok_token_bytes(const tok_encoding *enc, uint32_t id, size_t *len)
{
  const tok__added *a = tok__added_of(enc, id);
  if (a) {
    *len = a->decoded_len;
    return a->decoded;
  }
  const tok__model *m = enc->model;
  if (id >= m->id_end || m->off[id + 1] == m->off[id]) return NULL;
  *len = m->off[id + 1] - m->off[id];
  return (const char *)m->bytes + m->off[id];
}

static bool is_special_id(const tok_encoding *enc, uint32_t id)
{
  const tok__added *a = tok__added_of(enc, id);
  return a && a->special;
}

static tok_err unknown(const tok_encoding *enc, const uint32_t *ids, size_t i, tok_error *err)
{
  return tok__fail(err, TOK_EUNKNOWN_TOKEN, TOK_NO_POS, i,
                   "token id %u at index %zu is not a token of %s (its ids are below %u)", ids[i],
                   i, enc->info.name, enc->info.n_vocab);
}

/* transformers' clean_up_tokenization: spaces before punctuation and English contractions
 * removed, applied as its sequence of str.replace calls. */
static void cleanup_spaces(tok_buf *out, size_t from)
{
  static const char *const pairs[][2] = {
      {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"},
  };
  for (size_t k = 0; k < sizeof pairs / sizeof pairs[0]; k++) {
    size_t fl = strlen(pairs[k][0]), tl = strlen(pairs[k][1]);
    size_t r = from, w = from;
    while (r < out->len) {
      if (out->len - r >= fl && memcmp(out->data + r, pairs[k][0], fl) == 0) {
        memmove(out->data + w, pairs[k][1], tl);
        w += tl, r += fl;
      } else {
        out->data[w++] = out->data[r++];
      }
    }
    out->len = w;
  }
}

/* ---------------------------------------------------------------------------------------
 * Decoder steps over lists
 */
static tok_err step_bytelevel(const list *in, list *out, bool raw)
{
  tok_buf joined = {.limit = out->buf->limit};
  tok_err rc = TOK_OK;
  for (size_t k = 0; k < in->n && rc == TOK_OK; k++) {
    const uint8_t *t = (const uint8_t *)in->buf->data + in->toks[2 * k];
    size_t len = in->toks[2 * k + 1], i = 0;
    bool mapped = true;
    while (i < len && mapped) mapped = tok__char_byte(tok__utf8_next(t, len, &i)) >= 0;
    if (!mapped) {
      rc = tok_buf_append(&joined, t, len);
      continue;
    }
    for (i = 0; i < len && rc == TOK_OK;) {
      uint8_t b = (uint8_t)tok__char_byte(tok__utf8_next(t, len, &i));
      rc = tok_buf_append(&joined, &b, 1);
    }
  }
  if (rc == TOK_OK) {
    out->n = 0;
    uint32_t off = (uint32_t)out->buf->len;
    rc = raw ? tok_buf_append(out->buf, joined.data, joined.len)
             : tok_utf8_append_lossy(out->buf, joined.data, joined.len);
    if (rc == TOK_OK) {
      out->toks[0] = off;
      out->toks[1] = (uint32_t)(out->buf->len - off);
      out->n = 1;
    }
  }
  tok_buf_free(&joined);
  return rc;
}

static tok_err step_metaspace(const tok__dec_step *st, const list *in, list *out, bool continuation)
{
  for (size_t k = 0; k < in->n; k++) {
    const uint8_t *t = (const uint8_t *)in->buf->data + in->toks[2 * k];
    size_t len = in->toks[2 * k + 1];
    tok_err rc = list_push(out, "", 0);
    bool first = k == 0 && st->prepend && !continuation;
    for (size_t i = 0; i < len && rc == TOK_OK;) {
      if (len - i >= st->ch_len && memcmp(t + i, st->ch, st->ch_len) == 0) {
        if (!first) rc = list_extend(out, " ", 1);
        i += st->ch_len;
      } else {
        size_t cl = char_len(t[i]);
        rc = list_extend(out, t + i, cl);
        i += cl;
      }
    }
    if (rc != TOK_OK) return rc;
  }
  return TOK_OK;
}

static tok_err step_replace(tok_scratch *s, const tok__dec_step *st, const list *in, list *out,
                            tok_error *err)
{
  for (size_t k = 0; k < in->n; k++) {
    const uint8_t *t = (const uint8_t *)in->buf->data + in->toks[2 * k];
    size_t len = in->toks[2 * k + 1], pos = 0, copied = 0, last = SIZE_MAX;
    tok_err rc = list_push(out, "", 0);
    while (rc == TOK_OK && pos <= len) {
      int m = st->re_jit ? pcre2_jit_match(st->re, t, len, pos, 0, s->md, s->mctx)
                         : pcre2_match(st->re, t, len, pos, 0, s->md, s->mctx);
      if (m == PCRE2_ERROR_NOMATCH) break;
      if (m < 0) return tok__fail(err, TOK_EREGEX, TOK_NO_POS, k, "decoder Replace failed");
      const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(s->md);
      size_t a = ov[0], b = ov[1];
      if (a == b && last == b) {
        pos = b < len ? b + char_len(t[b]) : len + 1;
        continue;
      }
      rc = list_extend(out, t + copied, a - copied);
      if (rc == TOK_OK) rc = list_extend(out, st->text, st->text_len);
      copied = pos = last = b;
    }
    if (rc == TOK_OK) rc = list_extend(out, t + copied, len - copied);
    if (rc != TOK_OK) return rc;
  }
  return TOK_OK;
}

static int byte_token(const uint8_t *t, size_t len)
{
  static const char hex[] = "0123456789ABCDEF";
  if (len != 6 || memcmp(t, "<0x", 3) != 0 || t[5] != '>') return -1;
  const char *h = memchr(hex, t[3], 16), *l = memchr(hex, t[4], 16);
  /* Rust's from_str_radix(16) also takes lower-case digits */
  if (!h && t[3] >= 'a' && t[3] <= 'f') h = hex + (t[3] - 'a' + 10);
  if (!l && t[4] >= 'a' && t[4] <= 'f') l = hex + (t[4] - 'a' + 10);
  if (!h || !l) return -1;
  return (int)((h - hex) << 4 | (l - hex));
}

static tok_err flush_bytes(list *out, const uint8_t *bytes, size_t n, bool raw)
{
  if (n == 0) return TOK_OK;
  if (raw || tok_utf8_valid((const char *)bytes, n, NULL)) return list_push(out, bytes, n);
  for (size_t i = 0; i < n; i++) {
    tok_err rc = list_push(out, "\xEF\xBF\xBD", 3);
    if (rc != TOK_OK) return rc;
  }
  return TOK_OK;
}

static tok_err step_byte_fallback(const list *in, list *out, bool raw)
{
  uint8_t pending[256];
  size_t n = 0;
  tok_buf big = {0}; /* pending bytes beyond the stack buffer */
  tok_err rc = TOK_OK;
  for (size_t k = 0; k < in->n && rc == TOK_OK; k++) {
    const uint8_t *t = (const uint8_t *)in->buf->data + in->toks[2 * k];
    size_t len = in->toks[2 * k + 1];
    int b = byte_token(t, len);
    if (b >= 0) {
      uint8_t byte = (uint8_t)b;
      if (n < sizeof pending && big.len == 0) pending[n++] = byte;
      else {
        if (big.len == 0) rc = tok_buf_append(&big, pending, n);
        if (rc == TOK_OK) rc = tok_buf_append(&big, &byte, 1);
      }
      continue;
    }
    rc = big.len ? flush_bytes(out, (const uint8_t *)big.data, big.len, raw) : flush_bytes(out, pending, n, raw);
    n = 0, big.len = 0;
    if (rc == TOK_OK) rc = list_push(out, t, len);
  }
  if (rc == TOK_OK)
    rc = big.len ? flush_bytes(out, (const uint8_t *)big.data, big.len, raw) : flush_bytes(out, pending, n, raw);
  tok_buf_free(&big);
  return rc;
}

static tok_err step_fuse(const list *in, list *out)
{
  tok_err rc = list_push(out, "", 0);
  for (size_t k = 0; k < in->n && rc == TOK_OK; k++)
    rc = list_extend(out, in->buf->data + in->toks[2 * k], in->toks[2 * k + 1]);
  return rc;
}

static tok_err step_strip(const tok__dec_step *st, const list *in, list *out, bool keep_start0)
{
  for (size_t k = 0; k < in->n; k++) {
    const uint8_t *t = (const uint8_t *)in->buf->data + in->toks[2 * k];
    size_t len = in->toks[2 * k + 1], a = 0, b = len;
    for (uint32_t i = 0; i < st->start && !(keep_start0 && k == 0); i++) {
      if (len - a < st->ch_len || memcmp(t + a, st->ch, st->ch_len) != 0) break;
      a += st->ch_len;
    }
    for (uint32_t i = 0; i < st->stop; i++) {
      if (b - a < st->ch_len || memcmp(t + b - st->ch_len, st->ch, st->ch_len) != 0) break;
      b -= st->ch_len;
    }
    tok_err rc = list_push(out, t + a, b - a);
    if (rc != TOK_OK) return rc;
  }
  return TOK_OK;
}

static tok_err grow_lists(tok_scratch *s, size_t n)
{
  for (int i = 0; i < 2; i++) {
    uint32_t **arr = i ? &s->dec_tok2 : &s->dec_tok;
    if (s->dec_tok_cap[i] >= n) continue;
    size_t cap = s->dec_tok_cap[i] ? s->dec_tok_cap[i] : 256;
    while (cap < n) cap *= 2;
    uint32_t *grown = realloc(*arr, 2 * cap * sizeof *grown);
    if (!grown) return TOK_ENOMEM;
    *arr = grown;
    s->dec_tok_cap[i] = cap;
  }
  return TOK_OK;
}

tok_err tok__decode(const tok_encoding *enc, tok_scratch *s, const uint32_t *ids, size_t n,
                    const tok_decode_opts *opts, bool raw, tok_buf *out, tok_error *err)
{
  static const tok_decode_opts defaults = {0};
  if (!opts) opts = &defaults;
  const tok__decoder *d = &enc->decoder;
  size_t start_len = out->len;
  tok_err rc = TOK_OK;

  for (size_t i = 0; i < n; i++) {
    size_t len;
    if (!tok_token_bytes(enc, ids[i], &len)) return unknown(enc, ids, i, err);
  }

  if (d->bytes_only) {
    /* the exact bytes are the tokens' bytes; the text is their UTF-8 repair */
    tok_buf *dst = out;
    if (!raw) {
      s->dec[0].len = 0;
      s->dec[0].limit = out->limit;
      dst = &s->dec[0];
    }
    for (size_t i = 0; i < n && rc == TOK_OK; i++) {
      if (opts->skip_special_tokens && is_special_id(enc, ids[i])) continue;
      size_t len;
      const char *b = tok_token_bytes(enc, ids[i], &len);
      rc = tok_buf_append(dst, b, len);
      if (rc != TOK_OK) rc = tok__fail(err, rc, TOK_NO_POS, i, "decoded text exceeds %zu bytes at index %zu", out->limit, i);
    }
    if (rc == TOK_OK && !raw) {
      rc = tok_utf8_append_lossy(out, dst->data, dst->len);
      if (rc != TOK_OK) rc = tok__fail(err, rc, TOK_NO_POS, TOK_NO_POS, "decoded text exceeds %zu bytes", out->limit);
    }
    if (rc == TOK_OK && !raw && d->cleanup_spaces) cleanup_spaces(out, start_len);
    if (rc != TOK_OK) out->len = start_len;
    return rc;
  }

  /* general path: token strings, then the steps */
  if (grow_lists(s, n + 1) != TOK_OK) return tok__nomem(err);
  list cur = {&s->dec[0], s->dec_tok, 0}, next = {&s->dec[1], s->dec_tok2, 0};
  cur.buf->len = next.buf->len = 0;
  /* the working lists may hold a few times the output (spellings are up to 2 bytes a byte) */
  cur.buf->limit = next.buf->limit = out->limit ? out->limit * 3 + 64 : 0;
  /* allocated even when every token is empty, so that data + offset is always defined */
  if (tok_buf_reserve(cur.buf, 16) != TOK_OK || tok_buf_reserve(next.buf, 16) != TOK_OK)
    return tok__nomem(err);
  for (size_t i = 0; i < n && rc == TOK_OK; i++) {
    uint32_t id = ids[i];
    if (opts->skip_special_tokens && is_special_id(enc, id)) continue;
    uint32_t off = (uint32_t)cur.buf->len;
    const tok__added *a = tok__added_of(enc, id);
    if (a) {
      const char *str;
      size_t len;
      added_string(a, &str, &len);
      rc = tok_buf_append(cur.buf, str, len);
    } else {
      rc = model_string(enc->model, id, cur.buf);
    }
    cur.toks[2 * cur.n] = off;
    cur.toks[2 * cur.n + 1] = (uint32_t)(cur.buf->len - off);
    cur.n++;
  }
  bool fused = false;
  for (size_t k = 0; k < d->n_steps && rc == TOK_OK; k++) {
    const tok__dec_step *st = &d->steps[k];
    next.buf->len = 0;
    next.n = 0;
    switch (st->kind) {
    case TOK__DEC_BYTELEVEL: rc = step_bytelevel(&cur, &next, raw); fused = true; break;
    case TOK__DEC_METASPACE: rc = step_metaspace(st, &cur, &next, opts->continuation); break;
    case TOK__DEC_REPLACE: rc = step_replace(s, st, &cur, &next, err); break;
    case TOK__DEC_BYTE_FALLBACK: rc = step_byte_fallback(&cur, &next, raw); break;
    case TOK__DEC_FUSE: rc = step_fuse(&cur, &next); fused = true; break;
    case TOK__DEC_STRIP: rc = step_strip(st, &cur, &next, opts->continuation && fused); break;
    }
    list t = cur;
    cur = next;
    next = t;
  }
  for (size_t k = 0; k < cur.n && rc == TOK_OK; k++)
    rc = raw ? tok_buf_append(out, cur.buf->data + cur.toks[2 * k], cur.toks[2 * k + 1])
             : tok_utf8_append_lossy(out, cur.buf->data + cur.toks[2 * k], cur.toks[2 * k + 1]);
  if (rc == TOK_OK && !raw && d->cleanup_spaces) cleanup_spaces(out, start_len);
  if (rc != TOK_OK) {
    out->len = start_len;
    if (rc == TOK_ELIMIT) return tok__fail(err, rc, TOK_NO_POS, TOK_NO_POS, "decoded text exceeds %zu bytes", out->limit);
    if (rc == TOK_ENOMEM) return tok__nomem(err);
  }
  return rc;
}

tok_err tok_decode_bytes(const tok_encoding *enc, tok_scratch *scratch, const uint32_t *ids,
                         size_t n_ids, const tok_decode_opts *opts, tok_buf *out,
                         tok_error *err)
{
  return tok__decode(enc, scratch, ids, n_ids, opts, true, out, err);
}

tok_err tok_decode_text(const tok_encoding *enc, tok_scratch *scratch, const uint32_t *ids,
                        size_t n_ids, const tok_decode_opts *opts, tok_buf *out,
                        tok_error *err)
{
  return tok__decode(enc, scratch, ids, n_ids, opts, false, out, err);
}
