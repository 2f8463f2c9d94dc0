/*
 * tiktoken.c — loads tiktoken encodings: .tiktoken rank files and the manifests that
 * describe an encoding (name, rank file, pattern, special tokens), and turns them into a
 * pipeline: the encoding's regex as the only pre-tokenizer step (matches only, as
 * tiktoken's loop), a byte-level model that merges by rank, the special tokens as added
 * tokens matched only when allowed, and the bytes themselves as the decoder.
 *
 * A rank file has one "TOKEN_BASE64 RANK" line per token. Parsing is strict: a malformed
 * line is rejected with the file name and line number, because a silently skipped token
 * would give wrong ids much later.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load/load.h"

/* Largest rank accepted; generous (o200k uses 199,997) but bounds the tables. */
#define MAX_RANK (1u << 24)
#define MAX_TOKEN_LEN 4096

/* The next line of text[*pos .. text_len) without its "\n" or "\r\n"; advances *pos and
 * counts *line_no. Returns NULL at the end of the text. */
static const char *next_line(const char *text, size_t text_len, size_t *pos, size_t *line_len,
                             uint32_t *line_no)
{
  if (*pos >= text_len) return NULL;
  const char *line = text + *pos;
  const char *nl = memchr(line, '\n', text_len - *pos);
  *line_len = nl ? (size_t)(nl - line) : text_len - *pos;
  *pos += *line_len + (nl != NULL);
  (*line_no)++;
  if (*line_len > 0 && line[*line_len - 1] == '\r') (*line_len)--;
  return line;
}

tok_err tok__ranks_parse(const char *file, const char *text, size_t text_len, tok__model **out,
                         tok_error *err)
{
  tok_err rc = TOK_ENOMEM;
  tok__model_builder *b = tok__model_builder_new();
  uint32_t line_no = 0;
  size_t n_lines = 0;
  uint8_t token[MAX_TOKEN_LEN];
  if (!b) return tok__nomem(err);

  size_t pos = 0, line_len;
  for (const char *line; (line = next_line(text, text_len, &pos, &line_len, &line_no));) {
    if (line_len == 0) continue;
    const char *space = memchr(line, ' ', line_len);
    if (!space) {
      rc = tok__fail(err, TOK_EVOCAB, TOK_NO_POS, line_no,
                     "%s:%u: expected \"TOKEN_BASE64 RANK\"", file, line_no);
      goto fail;
    }
    size_t b64_len = (size_t)(space - line);
    long dec_len = tok_base64_decoded_len(line, b64_len);
    if (dec_len <= 0 || dec_len > MAX_TOKEN_LEN) {
      rc = tok__fail(err, TOK_EVOCAB, TOK_NO_POS, line_no,
                     "%s:%u: token is not valid non-empty base64 (at most %d bytes)", file,
                     line_no, MAX_TOKEN_LEN);
      goto fail;
    }
    uint64_t rank = 0;
    const char *d = space + 1, *end = line + line_len;
    if (d == end) rank = UINT64_MAX;
    for (; d < end && rank <= MAX_RANK; d++) {
      if (*d < '0' || *d > '9') {
        rank = UINT64_MAX;
        break;
      }
      rank = rank * 10 + (uint64_t)(*d - '0');
    }
    if (rank >= MAX_RANK) {
      rc = tok__fail(err, TOK_EVOCAB, TOK_NO_POS, line_no,
                     "%s:%u: rank must be a decimal number below %u", file, line_no, MAX_RANK);
      goto fail;
    }
    tok__base64_decode_unchecked(line, b64_len, token);
    if ((rc = tok__model_add_token(b, token, (size_t)dec_len, (uint32_t)rank, false)) != TOK_OK) goto fail;
    n_lines++;
  }
  if (n_lines == 0) {
    rc = tok__fail(err, TOK_EVOCAB, TOK_NO_POS, 0, "%s: no tokens", file);
    goto fail;
  }
  tok__model_opts opts = {.byte_level = true, .missing_is_error = true, .unk_id = TOK__NONE,
                          .what = file};
  rc = tok__model_finish(b, &opts, out, err);
  tok__model_builder_free(b);
  return rc;

fail:
  if (rc == TOK_ENOMEM) tok__fail(err, TOK_ENOMEM, TOK_NO_POS, TOK_NO_POS, "%s: out of memory", file);
  tok__model_builder_free(b);
  return rc;
}

tok_err tok__tiktoken_encoding(tok__manifest *m, tok__model *model, const char *sha256,
                               bool embedded, tok_encoding **out, tok_error *err)
{
  tok_encoding *enc = tok__encoding_new(m->name);
  tok_err rc = TOK_OK;
  if (!enc) return tok__nomem(err);
  enc->info.kind = TOK_KIND_TIKTOKEN;
  enc->info.embedded = embedded;
  enc->model = model;
  snprintf(enc->sha256, sizeof enc->sha256, "%s", sha256);
  /* move the manifest's strings into the encoding */
  free(enc->aliases);
  enc->aliases = m->aliases;
  m->aliases = NULL;
  enc->pattern = m->pattern;
  m->pattern = NULL;
  enc->source = m->ranks;
  m->ranks = NULL;

  uint32_t max_id = model->id_end - 1;
  if (!(enc->added = calloc(m->n_special ? m->n_special : 1, sizeof *enc->added))) goto nomem;
  for (size_t i = 0; i < m->n_special; i++) {
    tok_special_token *sp = &m->special[i];
    if (sp->id < model->id_end && model->off[sp->id + 1] > model->off[sp->id]) {
      rc = tok__fail(err, TOK_EMANIFEST, TOK_NO_POS, TOK_NO_POS,
                     "encoding %s: special token %s has id %u, which is also a rank", enc->name,
                     sp->text, sp->id);
      goto fail;
    }
    if (sp->id > max_id) max_id = sp->id;
    enc->added[i] = (tok__added){.content = (char *)sp->text, .content_len = (uint32_t)sp->text_len,
                                 .id = sp->id, .special = true};
    sp->text = NULL;
    enc->n_added++;
  }
  if (m->n_vocab && (m->n_vocab != max_id + 1 || m->n_vocab != model->n_tokens + m->n_special)) {
    rc = tok__fail(err, TOK_EMANIFEST, TOK_NO_POS, TOK_NO_POS,
                   "encoding %s: n_vocab %u does not match %u ranks + %zu special tokens "
                   "(highest id %u)",
                   enc->name, m->n_vocab, model->n_tokens, m->n_special, max_id);
    goto fail;
  }
  if (!(enc->pre.steps = calloc(1, sizeof *enc->pre.steps))) goto nomem;
  enc->pre.n_steps = 1;
  enc->pre.steps[0].kind = TOK__PRE_TIKTOKEN;
  char what[128];
  snprintf(what, sizeof what, "encoding %s", enc->name);
  if ((rc = tok__regex_compile(enc->pattern, strlen(enc->pattern), false, &enc->pre.steps[0].re,
                               &enc->pre.steps[0].re_jit, what, err)) != TOK_OK)
    goto fail;
  enc->pre.steps[0].scan = tok__scan_recognize(enc->pattern, strlen(enc->pattern));
  if ((rc = tok__encoding_finish(enc, err)) != TOK_OK) goto fail;
  *out = enc;
  return TOK_OK;
nomem:
  rc = tok__nomem(err);
fail:
  tok__encoding_free(enc);
  return rc;
}

/* ---------------------------------------------------------------------------------------
 * Manifests: one "key value" per line, '#' starts a comment line. Keys:
 *   name NAME            (required)  alias NAME   (any number)
 *   ranks FILE.tiktoken  (required)  sha256 HEX   (checked when the file is read)
 *   n_vocab N            (optional; checked like tiktoken's explicit_n_vocab)
 *   pattern REGEX        (required; the rest of the line, verbatim)
 *   special TEXT ID      (any number; TEXT is everything between the key and the id)
 */

void tok__manifest_free(tok__manifest *m)
{
  free(m->name);
  if (m->aliases)
    for (size_t i = 0; m->aliases[i]; i++) free(m->aliases[i]);
  free(m->aliases);
  free(m->ranks);
  free(m->pattern);
  for (size_t i = 0; i < m->n_special; i++) free((char *)m->special[i].text);
  free(m->special);
  memset(m, 0, sizeof *m);
}

static bool parse_u32(const char *s, size_t len, uint32_t *out)
{
  uint64_t v = 0;
  if (len == 0 || len > 10) return false;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (uint64_t)(s[i] - '0');
  }
  if (v > UINT32_MAX - 1) return false;
  *out = (uint32_t)v;
  return true;
}

static bool is_name(const char *s, size_t len)
{
  if (len == 0 || len > 64) return false;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '_' || c == '-' || c == '.'))
      return false;
  }
  return true;
}

tok_err tok__manifest_parse(const char *file, const char *text, size_t text_len,
                            tok__manifest *out, tok_error *err)
{
  tok__manifest m = {0};
  tok_err rc = TOK_ENOMEM;
  size_t aliases_len = 0;
  uint32_t line_no = 0;

#define BAD(...)                                                                              \
  do {                                                                                        \
    rc = tok__fail(err, TOK_EMANIFEST, TOK_NO_POS, line_no, __VA_ARGS__);                     \
    goto fail;                                                                                \
  } while (0)

  if (!(m.aliases = calloc(1, sizeof *m.aliases))) goto fail;
  size_t pos = 0, line_len;
  for (const char *line; (line = next_line(text, text_len, &pos, &line_len, &line_no));) {
    if (line_len == 0 || line[0] == '#') continue;
    const char *space = memchr(line, ' ', line_len);
    if (!space) BAD("%s:%u: expected \"key value\"", file, line_no);
    size_t key_len = (size_t)(space - line);
    const char *val = space + 1;
    size_t val_len = line_len - key_len - 1;
    if (memchr(val, '\0', val_len)) BAD("%s:%u: NUL byte in value", file, line_no);

#define KEY(k) (key_len == sizeof(k) - 1 && memcmp(line, k, key_len) == 0)
    if (KEY("name")) {
      if (m.name) BAD("%s:%u: name given twice", file, line_no);
      if (!is_name(val, val_len)) BAD("%s:%u: name must be 1-64 of [A-Za-z0-9_.-]", file, line_no);
      if (!(m.name = strndup(val, val_len))) goto fail;
    } else if (KEY("alias")) {
      if (!is_name(val, val_len)) BAD("%s:%u: alias must be 1-64 of [A-Za-z0-9_.-]", file, line_no);
      char **grown = realloc(m.aliases, (aliases_len + 2) * sizeof *grown);
      if (!grown) goto fail;
      m.aliases = grown;
      m.aliases[aliases_len + 1] = NULL;
      if (!(m.aliases[aliases_len] = strndup(val, val_len))) goto fail;
      aliases_len++;
    } else if (KEY("ranks")) {
      if (m.ranks) BAD("%s:%u: ranks given twice", file, line_no);
      if (!is_name(val, val_len) || val[0] == '.')
        BAD("%s:%u: ranks must be a file name in the same directory", file, line_no);
      if (!(m.ranks = strndup(val, val_len))) goto fail;
    } else if (KEY("sha256")) {
      if (val_len != 64) BAD("%s:%u: sha256 must be 64 hex digits", file, line_no);
      for (size_t i = 0; i < 64; i++) {
        char c = val[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
          BAD("%s:%u: sha256 must be 64 lower-case hex digits", file, line_no);
      }
      memcpy(m.sha256, val, 64);
      m.sha256[64] = '\0';
    } else if (KEY("n_vocab")) {
      if (!parse_u32(val, val_len, &m.n_vocab) || m.n_vocab == 0)
        BAD("%s:%u: n_vocab must be a positive number", file, line_no);
    } else if (KEY("pattern")) {
      if (m.pattern) BAD("%s:%u: pattern given twice", file, line_no);
      if (val_len == 0) BAD("%s:%u: empty pattern", file, line_no);
      if (!(m.pattern = strndup(val, val_len))) goto fail;
    } else if (KEY("special")) {
      const char *last = NULL;
      for (size_t i = val_len; i > 0; i--)
        if (val[i - 1] == ' ') {
          last = val + i - 1;
          break;
        }
      uint32_t id;
      if (!last || last == val || !parse_u32(last + 1, (size_t)(val + val_len - last - 1), &id))
        BAD("%s:%u: expected \"special TEXT ID\"", file, line_no);
      if (m.n_special >= TOK_MAX_SPECIAL)
        BAD("%s:%u: more than %d special tokens", file, line_no, TOK_MAX_SPECIAL);
      tok_special_token *grown = realloc(m.special, (m.n_special + 1) * sizeof *grown);
      if (!grown) goto fail;
      m.special = grown;
      size_t text_len2 = (size_t)(last - val);
      char *t = strndup(val, text_len2);
      if (!t) goto fail;
      for (size_t i = 0; i < m.n_special; i++)
        if (m.special[i].id == id || (m.special[i].text_len == text_len2 &&
                                      memcmp(m.special[i].text, t, text_len2) == 0)) {
          free(t);
          BAD("%s:%u: special token text or id repeated", file, line_no);
        }
      m.special[m.n_special++] = (tok_special_token){t, text_len2, id};
    } else {
      BAD("%s:%u: unknown key \"%.*s\"", file, line_no, (int)key_len, line);
    }
#undef KEY
  }
  if (!m.name) BAD("%s: missing \"name\"", file);
  if (!m.ranks) BAD("%s: missing \"ranks\"", file);
  if (!m.pattern) BAD("%s: missing \"pattern\"", file);
#undef BAD
  *out = m;
  return TOK_OK;

fail:
  if (rc == TOK_ENOMEM) tok__fail(err, TOK_ENOMEM, TOK_NO_POS, TOK_NO_POS, "%s: out of memory", file);
  tok__manifest_free(&m);
  return rc;
}
