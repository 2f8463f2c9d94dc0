/*
 * hf.c — loads a Hugging Face tokenizer.json (and tokenizer_config.json beside it) into a
 * pipeline configuration.
 *
 * The vocabulary and merges are scanned in place (jscan.c) and fed to the model builder;
 * the other sections are small and parsed with cJSON. Every component is read field by
 * field, and anything tokd does not implement — a component type, an option value that
 * changes results — is refused with its JSON path ("pre_tokenizer.pretokenizers[1]:
 * UnicodeScripts is not supported"), never ignored: a tokenizer that loads gives the ids
 * Hugging Face gives.
 *
 * Byte-level models (a ByteLevel pre-tokenizer) spell bytes with GPT-2's printable
 * alphabet in their vocabulary; those strings are turned back into bytes here, so that
 * encoding works on the text's bytes directly. An entry that is not such a spelling (e.g.
 * DeepSeek's "<｜begin▁of▁sentence｜>") is kept as a literal: decoded as written, never
 * produced by merging.
 *
 * With a directory, tokenizer_config.json is applied as transformers' AutoTokenizer
 * applies it: Llama-, Gemma-, Cohere- and GPT-NeoX-class tokenizers get BOS/EOS from
 * add_bos_token / add_eos_token (their update_post_processor replaces the post-processor), and
 * clean_up_tokenization_spaces turns on transformers' decode clean-up.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "load/jscan.h"
#include "load/load.h"

#define MAX_TOKENIZER_BYTES ((size_t)512 << 20)
#define MAX_CONFIG_BYTES ((size_t)64 << 20)
#define GPT2_PATTERN "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
/* Rust regex's \w (alphabetic, marks, decimal digits, connector punctuation, joiners) */
#define WORD_CLASS "\\p{L}\\p{Nl}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}"
#define WHITESPACE_PATTERN "[" WORD_CLASS "]+|[^" WORD_CLASS "\\s]+"

typedef struct hf {
  const char *name;
  char file[4096];   /* the tokenizer.json */
  char config[4096]; /* tokenizer_config.json, or "" */
  char jinja[4096];  /* chat_template.jinja, or "" */
  char model_config[4096]; /* config.json (the model's), or "" */
  tok_encoding *enc;
  tok_error *err;
  bool byte_level;
} hf;

/* ---------------------------------------------------------------------------------------
 * Errors and small readers
 */
static tok_err bad(hf *h, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static tok_err bad(hf *h, const char *path, const char *fmt, ...)
{
  char msg[200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return tok__fail(h->err, TOK_ETOKENIZER, TOK_NO_POS, TOK_NO_POS, "%s: %s: %s", h->file, path, msg);
}

static tok_err unsupported(hf *h, const char *path, const char *what)
{
  return tok__fail(h->err, TOK_EUNSUPPORTED, TOK_NO_POS, TOK_NO_POS,
                   "%s: %s: %s is not supported by tokd", h->file, path, what);
}

static const char *type_of(const cJSON *obj)
{
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(obj, "type");
  return cJSON_IsString(t) ? t->valuestring : NULL;
}

/* A boolean field; def when absent. */
static tok_err get_bool(hf *h, const cJSON *obj, const char *key, bool def, bool *out, const char *path)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!v || cJSON_IsNull(v)) {
    *out = def;
    return TOK_OK;
  }
  if (!cJSON_IsBool(v)) return bad(h, path, "\"%s\" must be true or false", key);
  *out = cJSON_IsTrue(v);
  return TOK_OK;
}

static tok_err get_uint(hf *h, const cJSON *obj, const char *key, uint32_t def, uint32_t *out, const char *path)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!v) {
    *out = def;
    return TOK_OK;
  }
  if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > UINT32_MAX ||
      v->valuedouble != (double)(uint32_t)v->valuedouble)
    return bad(h, path, "\"%s\" must be a whole number", key);
  *out = (uint32_t)v->valuedouble;
  return TOK_OK;
}

static tok_err get_string(hf *h, const cJSON *obj, const char *key, const char **out, const char *path)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!cJSON_IsString(v)) return bad(h, path, "\"%s\" must be a string", key);
  *out = v->valuestring;
  return TOK_OK;
}

/* A one-character string (Metaspace's replacement, Strip's content). */
static tok_err get_char(hf *h, const cJSON *obj, const char *key, char out[5], uint8_t *len, const char *path)
{
  const char *s = NULL;
  tok_err rc = get_string(h, obj, key, &s, path);
  if (rc != TOK_OK) return rc;
  size_t n = strlen(s), i = 0;
  if (n == 0 || n > 4) return bad(h, path, "\"%s\" must be one character", key);
  tok__utf8_next((const uint8_t *)s, n, &i);
  if (i != n) return bad(h, path, "\"%s\" must be one character", key);
  memcpy(out, s, n);
  out[n] = 0;
  *len = (uint8_t)n;
  return TOK_OK;
}

/* {"String": s} or {"Regex": r}: compiles it (a string literally); *scan (when asked)
 * names the hand-written scanner for the regex, if there is one. */
static tok_err get_pattern(hf *h, const cJSON *obj, const char *path, pcre2_code **re, bool *jit,
                           tok__scan_kind *scan)
{
  const cJSON *p = cJSON_GetObjectItemCaseSensitive(obj, "pattern");
  const cJSON *s = cJSON_GetObjectItemCaseSensitive(p, "String");
  const cJSON *r = cJSON_GetObjectItemCaseSensitive(p, "Regex");
  const cJSON *v = cJSON_IsString(s) ? s : r;
  if (!cJSON_IsObject(p) || !cJSON_IsString(v))
    return bad(h, path, "\"pattern\" must be {\"String\": ...} or {\"Regex\": ...}");
  char what[4200];
  snprintf(what, sizeof what, "%s: %s.pattern", h->file, path);
  if (scan) *scan = v == r ? tok__scan_recognize(v->valuestring, strlen(v->valuestring)) : TOK__SCAN_NONE;
  return tok__regex_compile(v->valuestring, strlen(v->valuestring), v == s, re, jit, what, h->err);
}

static tok_err dup_string(hf *h, const char *s, char **out, size_t *len)
{
  *len = strlen(s);
  if (!(*out = malloc(*len + 1))) return tok__nomem(h->err);
  memcpy(*out, s, *len + 1);
  return TOK_OK;
}

/* ---------------------------------------------------------------------------------------
 * Normalizer
 */
static tok_err add_norm(hf *h, tok__norm_step **out)
{
  tok__normalizer *n = &h->enc->normalizer;
  tok__norm_step *grown = realloc(n->steps, (n->n_steps + 1) * sizeof *grown);
  if (!grown) return tok__nomem(h->err);
  n->steps = grown;
  *out = &grown[n->n_steps++];
  memset(*out, 0, sizeof **out);
  return TOK_OK;
}

static tok_err parse_normalizer(hf *h, const cJSON *obj, const char *path, int depth)
{
  if (!obj || cJSON_IsNull(obj)) return TOK_OK;
  const char *type = type_of(obj);
  char sub[256];
  if (!type) return bad(h, path, "missing \"type\"");
  if (depth > 8) return bad(h, path, "sequences nested too deeply");
  if (!strcmp(type, "Sequence")) {
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(obj, "normalizers");
    if (!cJSON_IsArray(list)) return bad(h, path, "\"normalizers\" must be a list");
    int i = 0;
    for (const cJSON *it = list->child; it; it = it->next, i++) {
      snprintf(sub, sizeof sub, "%s.normalizers[%d]", path, i);
      tok_err rc = parse_normalizer(h, it, sub, depth + 1);
      if (rc != TOK_OK) return rc;
    }
    return TOK_OK;
  }
  static const struct { const char *name; tok__norm_kind kind; } simple[] = {
      {"NFC", TOK__NORM_NFC}, {"NFD", TOK__NORM_NFD}, {"NFKC", TOK__NORM_NFKC},
      {"NFKD", TOK__NORM_NFKD}, {"Lowercase", TOK__NORM_LOWERCASE},
      {"StripAccents", TOK__NORM_STRIP_ACCENTS},
  };
  tok__norm_step *st;
  tok_err rc;
  for (size_t i = 0; i < sizeof simple / sizeof simple[0]; i++)
    if (!strcmp(type, simple[i].name)) {
      if ((rc = add_norm(h, &st)) != TOK_OK) return rc;
      st->kind = simple[i].kind;
      return TOK_OK;
    }
  if (!strcmp(type, "Replace")) {
    const char *content = NULL;
    if ((rc = get_string(h, obj, "content", &content, path)) != TOK_OK) return rc;
    if ((rc = add_norm(h, &st)) != TOK_OK) return rc;
    st->kind = TOK__NORM_REPLACE;
    if ((rc = dup_string(h, content, &st->text, &st->text_len)) != TOK_OK) return rc;
    return get_pattern(h, obj, path, &st->re, &st->re_jit, NULL);
  }
  if (!strcmp(type, "Prepend")) {
    const char *prepend = NULL;
    if ((rc = get_string(h, obj, "prepend", &prepend, path)) != TOK_OK) return rc;
    if ((rc = add_norm(h, &st)) != TOK_OK) return rc;
    st->kind = TOK__NORM_PREPEND;
    return dup_string(h, prepend, &st->text, &st->text_len);
  }
  if (!strcmp(type, "Strip")) {
    bool left, right;
    if ((rc = get_bool(h, obj, "strip_left", true, &left, path)) != TOK_OK ||
        (rc = get_bool(h, obj, "strip_right", true, &right, path)) != TOK_OK)
      return rc;
    if ((rc = add_norm(h, &st)) != TOK_OK) return rc;
    st->kind = TOK__NORM_STRIP;
    st->left = left, st->right = right;
    return TOK_OK;
  }
  char what[96];
  snprintf(what, sizeof what, "normalizer %.40s", type);
  return unsupported(h, path, what);
}

/* ---------------------------------------------------------------------------------------
 * Pre-tokenizer
 */
static tok_err add_pre(hf *h, const char *path, tok__pre_step **out)
{
  tok__pretokenizer *p = &h->enc->pre;
  if (p->n_steps >= TOK__MAX_PRE_STEPS) return unsupported(h, path, "more than 8 pre-tokenizer steps");
  tok__pre_step *grown = realloc(p->steps, (p->n_steps + 1) * sizeof *grown);
  if (!grown) return tok__nomem(h->err);
  p->steps = grown;
  *out = &grown[p->n_steps++];
  memset(*out, 0, sizeof **out);
  return TOK_OK;
}

static tok_err get_behavior(hf *h, const cJSON *obj, const char *path, tok__split_behavior def,
                            tok__split_behavior *out)
{
  static const char *const names[] = {"Removed", "Isolated", "MergedWithPrevious",
                                      "MergedWithNext", "Contiguous"};
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "behavior");
  if (!v) {
    *out = def;
    return TOK_OK;
  }
  for (int i = 0; i < 5; i++)
    if (cJSON_IsString(v) && !strcmp(v->valuestring, names[i])) {
      *out = (tok__split_behavior)i;
      return TOK_OK;
    }
  return bad(h, path, "\"behavior\" must be Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous");
}

static tok_err get_prepend_scheme(hf *h, const cJSON *obj, const char *path, tok__prepend_scheme *out)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "prepend_scheme");
  const cJSON *legacy = cJSON_GetObjectItemCaseSensitive(obj, "add_prefix_space");
  *out = TOK__PREPEND_ALWAYS;
  if (v) {
    if (cJSON_IsString(v) && !strcmp(v->valuestring, "always")) *out = TOK__PREPEND_ALWAYS;
    else if (cJSON_IsString(v) && !strcmp(v->valuestring, "first")) *out = TOK__PREPEND_FIRST;
    else if (cJSON_IsString(v) && !strcmp(v->valuestring, "never")) *out = TOK__PREPEND_NEVER;
    else return bad(h, path, "\"prepend_scheme\" must be always, first or never");
  }
  if (cJSON_IsFalse(legacy)) {
    if (v && *out != TOK__PREPEND_NEVER)
      return bad(h, path, "add_prefix_space does not match declared prepend_scheme");
    *out = TOK__PREPEND_NEVER;
  }
  return TOK_OK;
}

static tok_err parse_pre(hf *h, const cJSON *obj, const char *path, int depth)
{
  if (!obj || cJSON_IsNull(obj)) return TOK_OK;
  const char *type = type_of(obj);
  char sub[256];
  tok__pre_step *st;
  tok_err rc;
  if (!type) return bad(h, path, "missing \"type\"");
  if (depth > 8) return bad(h, path, "sequences nested too deeply");
  if (h->byte_level)
    return unsupported(h, path, "a pre-tokenizer step after ByteLevel");
  if (!strcmp(type, "Sequence")) {
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(obj, "pretokenizers");
    if (!cJSON_IsArray(list)) return bad(h, path, "\"pretokenizers\" must be a list");
    int i = 0;
    for (const cJSON *it = list->child; it; it = it->next, i++) {
      snprintf(sub, sizeof sub, "%s.pretokenizers[%d]", path, i);
      if ((rc = parse_pre(h, it, sub, depth + 1)) != TOK_OK) return rc;
    }
    return TOK_OK;
  }
  if (!strcmp(type, "Split")) {
    if ((rc = add_pre(h, path, &st)) != TOK_OK) return rc;
    st->kind = TOK__PRE_SPLIT;
    if ((rc = get_behavior(h, obj, path, TOK__SPLIT_ISOLATED, &st->behavior)) != TOK_OK ||
        (rc = get_bool(h, obj, "invert", false, &st->invert, path)) != TOK_OK)
      return rc;
    if (!cJSON_GetObjectItemCaseSensitive(obj, "behavior")) return bad(h, path, "missing \"behavior\"");
    return get_pattern(h, obj, path, &st->re, &st->re_jit, &st->scan);
  }
  if (!strcmp(type, "ByteLevel")) {
    bool use_regex, trim;
    if ((rc = add_pre(h, path, &st)) != TOK_OK) return rc;
    st->kind = TOK__PRE_BYTELEVEL;
    if ((rc = get_bool(h, obj, "add_prefix_space", true, &st->add_prefix_space, path)) != TOK_OK ||
        (rc = get_bool(h, obj, "use_regex", true, &use_regex, path)) != TOK_OK ||
        (rc = get_bool(h, obj, "trim_offsets", true, &trim, path)) != TOK_OK)
      return rc;
    st->behavior = TOK__SPLIT_ISOLATED;
    h->byte_level = true;
    if (use_regex) {
      st->scan = tok__scan_recognize(GPT2_PATTERN, strlen(GPT2_PATTERN));
      return tok__regex_compile(GPT2_PATTERN, strlen(GPT2_PATTERN), false, &st->re, &st->re_jit,
                                "ByteLevel's GPT-2 pattern", h->err);
    }
    return TOK_OK;
  }
  if (!strcmp(type, "Metaspace")) {
    if ((rc = add_pre(h, path, &st)) != TOK_OK) return rc;
    st->kind = TOK__PRE_METASPACE;
    st->behavior = TOK__SPLIT_MERGED_WITH_NEXT;
    if ((rc = get_char(h, obj, "replacement", st->replacement, &st->replacement_len, path)) != TOK_OK ||
        (rc = get_prepend_scheme(h, obj, path, &st->prepend)) != TOK_OK ||
        (rc = get_bool(h, obj, "split", true, &st->split, path)) != TOK_OK)
      return rc;
    if (st->replacement_len == 1 && st->replacement[0] == ' ')
      return unsupported(h, path, "a space as Metaspace's replacement");
    return TOK_OK;
  }
  if (!strcmp(type, "Digits")) {
    if ((rc = add_pre(h, path, &st)) != TOK_OK) return rc;
    st->kind = TOK__PRE_DIGITS;
    if ((rc = get_bool(h, obj, "individual_digits", false, &st->individual_digits, path)) != TOK_OK) return rc;
    st->behavior = st->individual_digits ? TOK__SPLIT_ISOLATED : TOK__SPLIT_CONTIGUOUS;
    return TOK_OK;
  }
  if (!strcmp(type, "Whitespace")) {
    if ((rc = add_pre(h, path, &st)) != TOK_OK) return rc;
    st->kind = TOK__PRE_WHITESPACE;
    st->behavior = TOK__SPLIT_REMOVED;
    st->invert = true;
    return tok__regex_compile(WHITESPACE_PATTERN, strlen(WHITESPACE_PATTERN), false, &st->re,
                              &st->re_jit, "Whitespace's pattern", h->err);
  }
  if (!strcmp(type, "WhitespaceSplit")) {
    if ((rc = add_pre(h, path, &st)) != TOK_OK) return rc;
    st->kind = TOK__PRE_WHITESPACE_SPLIT;
    st->behavior = TOK__SPLIT_REMOVED;
    return TOK_OK;
  }
  if (!strcmp(type, "Punctuation")) {
    if ((rc = add_pre(h, path, &st)) != TOK_OK) return rc;
    st->kind = TOK__PRE_PUNCTUATION;
    return get_behavior(h, obj, path, TOK__SPLIT_ISOLATED, &st->behavior);
  }
  if (!strcmp(type, "BertPreTokenizer")) {
    if ((rc = add_pre(h, path, &st)) != TOK_OK) return rc;
    st->kind = TOK__PRE_WHITESPACE_SPLIT;
    st->behavior = TOK__SPLIT_REMOVED;
    if ((rc = add_pre(h, path, &st)) != TOK_OK) return rc;
    st->kind = TOK__PRE_PUNCTUATION;
    st->behavior = TOK__SPLIT_ISOLATED;
    return TOK_OK;
  }
  char what[96];
  snprintf(what, sizeof what, "pre-tokenizer %.40s", type);
  return unsupported(h, path, what);
}

/* ---------------------------------------------------------------------------------------
 * Model: scanned in place
 */

/* A vocabulary string as the bytes the model works on: for byte-level models the bytes
 * its characters spell (*literal false), or the string itself when some character spells
 * no byte (*literal true). */
static void spelled_bytes(const hf *h, const char *s, size_t len, tok_buf *out, bool *literal)
{
  out->len = 0;
  *literal = false;
  if (!h->byte_level) {
    memcpy(out->data, s, len);
    out->len = len;
    return;
  }
  for (size_t i = 0; i < len;) {
    int b = tok__char_byte(tok__utf8_next((const uint8_t *)s, len, &i));
    if (b < 0) {
      memcpy(out->data, s, len);
      out->len = len;
      *literal = true;
      return;
    }
    out->data[out->len++] = (char)b;
  }
}

typedef struct model_scan {
  tok__model_builder *b;
  bool have_vocab, have_merges, is_bpe;
  bool ignore_merges, byte_fallback, fuse_unk;
  char unk[256];
  bool have_unk;
  const char *merges_at, *merges_end; /* merges are read after the vocabulary */
} model_scan;

static tok_err scan_vocab(hf *h, tok__js *js, model_scan *ms)
{
  tok_buf key = {0}, bytes = {0};
  tok_err rc = TOK_OK;
  if (!tok__js_eat(js, '{')) return tok__js_fail(js, "model.vocab must be an object");
  if (!tok__js_eat(js, '}')) {
    do {
      key.len = 0;
      uint32_t id;
      bool literal;
      if ((rc = tok__js_string(js, &key)) != TOK_OK) break;
      if (!tok__js_eat(js, ':')) {
        rc = tok__js_fail(js, "expected ':'");
        break;
      }
      if ((rc = tok__js_u32(js, &id)) != TOK_OK) break;
      if (key.len == 0 || key.len > 0xFFFF) {
        rc = bad(h, "model.vocab", "a token is empty or longer than 65535 bytes");
        break;
      }
      if (tok_buf_reserve(&bytes, key.len) != TOK_OK) {
        rc = tok__nomem(h->err);
        break;
      }
      spelled_bytes(h, key.data, key.len, &bytes, &literal);
      if ((rc = tok__model_add_token(ms->b, (const uint8_t *)bytes.data, bytes.len, id, literal)) != TOK_OK) {
        rc = rc == TOK_ENOMEM ? tok__nomem(h->err) : bad(h, "model.vocab", "bad token or id %u", id);
        break;
      }
    } while (tok__js_eat(js, ','));
    if (rc == TOK_OK && !tok__js_eat(js, '}')) rc = tok__js_fail(js, "expected ',' or '}' in model.vocab");
  }
  tok_buf_free(&key);
  tok_buf_free(&bytes);
  return rc;
}

/* names merge i in an error message */
#define MERGE_PATH(i) (snprintf(path, sizeof path, "model.merges[%u]", (i)), path)

static tok_err scan_merges(hf *h, tok__js *js, model_scan *ms)
{
  tok_buf a = {0}, b = {0}, ab = {0}, bb = {0};
  tok_err rc = TOK_OK;
  uint32_t index = 0;
  char path[64];
  if (!tok__js_eat(js, '[')) return tok__js_fail(js, "model.merges must be a list");
  if (!tok__js_eat(js, ']')) {
    do {
      a.len = b.len = 0;
      if (tok__js_peek(js) == '[') {
        js->p++;
        if ((rc = tok__js_string(js, &a)) != TOK_OK) break;
        if (!tok__js_eat(js, ',')) {
          rc = tok__js_fail(js, "a merge pair needs two strings");
          break;
        }
        if ((rc = tok__js_string(js, &b)) != TOK_OK) break;
        if (!tok__js_eat(js, ']')) {
          rc = tok__js_fail(js, "a merge pair needs exactly two strings");
          break;
        }
      } else {
        if ((rc = tok__js_string(js, &a)) != TOK_OK) break;
        /* "left right": exactly one space, as Hugging Face requires */
        char *sp = memchr(a.data, ' ', a.len);
        if (!sp || memchr(sp + 1, ' ', a.len - (size_t)(sp + 1 - a.data))) {
          rc = bad(h, MERGE_PATH(index), "a merge must be \"left right\" with one space");
          break;
        }
        size_t left = (size_t)(sp - a.data);
        if (tok_buf_append(&b, sp + 1, a.len - left - 1) != TOK_OK) {
          rc = tok__nomem(h->err);
          break;
        }
        a.len = left;
      }
      bool lit_a, lit_b;
      if (tok_buf_reserve(&ab, a.len + 1) != TOK_OK || tok_buf_reserve(&bb, b.len + 1) != TOK_OK) {
        rc = tok__nomem(h->err);
        break;
      }
      spelled_bytes(h, a.data, a.len, &ab, &lit_a);
      spelled_bytes(h, b.data, b.len, &bb, &lit_b);
      if (ab.len == 0 || bb.len == 0) {
        rc = bad(h, MERGE_PATH(index), "a merge part is empty");
        break;
      }
      if ((rc = tok__model_add_merge(ms->b, (const uint8_t *)ab.data, ab.len, (const uint8_t *)bb.data,
                                     bb.len)) != TOK_OK) {
        rc = rc == TOK_ENOMEM ? tok__nomem(h->err) : bad(h, MERGE_PATH(index), "merge too long");
        break;
      }
      index++;
    } while (tok__js_eat(js, ','));
    if (rc == TOK_OK && !tok__js_eat(js, ']')) rc = tok__js_fail(js, "expected ',' or ']' in model.merges");
  }
  tok_buf_free(&a);
  tok_buf_free(&b);
  tok_buf_free(&ab);
  tok_buf_free(&bb);
  return rc;
}

/* A scalar model option, parsed with cJSON from its text. */
static tok_err model_option(hf *h, tok__js *js, const char *key, model_scan *ms)
{
  const char *v;
  size_t len;
  tok_err rc = tok__js_skip(js, &v, &len);
  if (rc != TOK_OK) return rc;
  cJSON *j = cJSON_ParseWithLength(v, len);
  char path[96];
  snprintf(path, sizeof path, "model.%.60s", key);
  if (!j) return bad(h, path, "not valid JSON");
  if (!strcmp(key, "type")) {
    ms->is_bpe = cJSON_IsString(j) && !strcmp(j->valuestring, "BPE");
    if (!ms->is_bpe) {
      char what[96];
      snprintf(what, sizeof what, "model %.40s (only BPE is)", cJSON_IsString(j) ? j->valuestring : "?");
      rc = unsupported(h, "model.type", what);
    }
  } else if (!strcmp(key, "dropout")) {
    if (!cJSON_IsNull(j) && !(cJSON_IsNumber(j) && j->valuedouble == 0))
      rc = unsupported(h, path, "BPE dropout other than null");
  } else if (!strcmp(key, "unk_token")) {
    if (cJSON_IsString(j) && strlen(j->valuestring) < sizeof ms->unk) {
      snprintf(ms->unk, sizeof ms->unk, "%s", j->valuestring);
      ms->have_unk = true;
    } else if (!cJSON_IsNull(j)) {
      rc = bad(h, path, "must be a string or null");
    }
  } else if (!strcmp(key, "continuing_subword_prefix") || !strcmp(key, "end_of_word_suffix")) {
    if (!cJSON_IsNull(j) && !(cJSON_IsString(j) && j->valuestring[0] == 0))
      rc = unsupported(h, path, "a non-empty continuing_subword_prefix/end_of_word_suffix");
  } else if (!strcmp(key, "fuse_unk") || !strcmp(key, "byte_fallback") || !strcmp(key, "ignore_merges")) {
    if (!cJSON_IsBool(j) && !cJSON_IsNull(j)) rc = bad(h, path, "must be true or false");
    bool v2 = cJSON_IsTrue(j);
    if (key[0] == 'f') ms->fuse_unk = v2;
    else if (key[0] == 'b') ms->byte_fallback = v2;
    else ms->ignore_merges = v2;
  }
  cJSON_Delete(j);
  return rc;
}

/* Reads the model object at js (leaving js after it). */
static tok_err scan_model(hf *h, tok__js *jsp, const char *file_start, tok__model **out)
{
  tok__js js = *jsp;
  model_scan ms = {.b = tok__model_builder_new()};
  tok_err rc = TOK_OK;
  if (!ms.b) return tok__nomem(h->err);
  if (!tok__js_eat(&js, '{')) {
    rc = bad(h, "model", "must be an object");
    goto done;
  }
  tok_buf key = {0};
  if (!tok__js_eat(&js, '}')) {
    do {
      key.len = 0;
      if ((rc = tok__js_string(&js, &key)) != TOK_OK) break;
      if (tok_buf_append(&key, "", 1) != TOK_OK) {
        rc = tok__nomem(h->err);
        break;
      }
      if (!tok__js_eat(&js, ':')) {
        rc = tok__js_fail(&js, "expected ':'");
        break;
      }
      if (!strcmp(key.data, "vocab")) {
        rc = scan_vocab(h, &js, &ms);
        ms.have_vocab = true;
      } else if (!strcmp(key.data, "merges")) {
        /* merges name vocabulary entries: read them now if the vocabulary came first (as
         * Hugging Face writes it), else remember where they are and read them last */
        if (ms.have_vocab) {
          rc = scan_merges(h, &js, &ms);
        } else {
          ms.merges_at = js.p;
          rc = tok__js_skip(&js, NULL, NULL);
          ms.merges_end = js.p;
        }
        ms.have_merges = true;
      } else {
        rc = model_option(h, &js, key.data, &ms);
      }
    } while (rc == TOK_OK && tok__js_eat(&js, ','));
    if (rc == TOK_OK && !tok__js_eat(&js, '}')) rc = tok__js_fail(&js, "expected ',' or '}' in model");
  }
  tok_buf_free(&key);
  if (rc != TOK_OK) goto done;
  if (!ms.is_bpe) {
    rc = bad(h, "model", "missing \"type\": \"BPE\"");
    goto done;
  }
  if (!ms.have_vocab) {
    rc = bad(h, "model", "missing \"vocab\"");
    goto done;
  }
  if (ms.merges_at) {
    tok__js mj = {ms.merges_at, ms.merges_end, file_start, h->file, h->err};
    if ((rc = scan_merges(h, &mj, &ms)) != TOK_OK) goto done;
  }
  {
    tok__model_opts opts = {.by_list = true, .byte_level = h->byte_level,
                            .ignore_merges = ms.ignore_merges, .byte_fallback = ms.byte_fallback,
                            .fuse_unk = ms.fuse_unk, .unk_id = TOK__NONE, .what = h->file};
    if (ms.have_unk) {
      /* the unknown token must be in the vocabulary (Hugging Face fails when it is used) */
      rc = tok__model_finish(ms.b, &opts, out, h->err);
      if (rc != TOK_OK) goto done;
      tok_buf sb = {0};
      bool lit;
      if (tok_buf_reserve(&sb, strlen(ms.unk) + 1) != TOK_OK) {
        rc = tok__nomem(h->err);
        goto done;
      }
      spelled_bytes(h, ms.unk, strlen(ms.unk), &sb, &lit);
      (*out)->unk_id = tok__model_find(*out, (const uint8_t *)sb.data, sb.len);
      tok_buf_free(&sb);
      if ((*out)->unk_id == TOK__NONE) {
        tok__model_free(*out);
        *out = NULL;
        rc = bad(h, "model.unk_token", "\"%.60s\" is not in the vocabulary", ms.unk);
      }
      goto done;
    }
    rc = tok__model_finish(ms.b, &opts, out, h->err);
  }
done:
  jsp->p = js.p;
  tok__model_builder_free(ms.b);
  return rc;
}

/* ---------------------------------------------------------------------------------------
 * Added tokens: ids are assigned as Hugging Face's AddedVocabulary::add_tokens does (a
 * token already in the model keeps the model's id; the others are numbered from the
 * vocabulary size, in order); the "id" fields of the file are not used.
 */
static uint32_t id_of_string(const hf *h, const tok__model *m, const char *s, size_t len)
{
  uint8_t buf[1024];
  tok_buf tb = {(char *)buf, 0, sizeof buf, sizeof buf};
  if (len > sizeof buf) return TOK__NONE;
  bool literal;
  spelled_bytes(h, s, len, &tb, &literal);
  uint32_t id = tok__model_find(m, buf, tb.len);
  if (id != TOK__NONE && m->literal && tok__bit(m->literal, id) != literal) return TOK__NONE;
  return id;
}

static tok_err parse_added(hf *h, const cJSON *list, const tok__model *m)
{
  tok_encoding *enc = h->enc;
  if (!list || cJSON_IsNull(list)) return TOK_OK;
  if (!cJSON_IsArray(list)) return bad(h, "added_tokens", "must be a list");
  size_t n = (size_t)cJSON_GetArraySize(list);
  if (!(enc->added = calloc(n ? n : 1, sizeof *enc->added))) return tok__nomem(h->err);
  uint32_t next_id = m->n_tokens; /* the model's vocabulary size */
  int i = 0;
  for (const cJSON *it = list->child; it; it = it->next, i++) {
    char path[64];
    snprintf(path, sizeof path, "added_tokens[%d]", i);
    const char *content = NULL;
    tok__added a = {0};
    tok_err rc;
    if ((rc = get_string(h, it, "content", &content, path)) != TOK_OK) return rc;
    bool special;
    if ((rc = get_bool(h, it, "special", false, &special, path)) != TOK_OK ||
        (rc = get_bool(h, it, "single_word", false, &a.single_word, path)) != TOK_OK ||
        (rc = get_bool(h, it, "lstrip", false, &a.lstrip, path)) != TOK_OK ||
        (rc = get_bool(h, it, "rstrip", false, &a.rstrip, path)) != TOK_OK ||
        (rc = get_bool(h, it, "normalized", !special, &a.normalized, path)) != TOK_OK)
      return rc;
    a.special = special;
    size_t len = strlen(content);
    if (len == 0) continue; /* Hugging Face ignores empty tokens */
    /* the same content again replaces the earlier entry's properties, keeping its id */
    size_t k;
    for (k = 0; k < enc->n_added; k++)
      if (enc->added[k].content_len == len && !memcmp(enc->added[k].content, content, len)) break;
    uint32_t id = k < enc->n_added ? enc->added[k].id : id_of_string(h, m, content, len);
    if (id == TOK__NONE) id = next_id++;
    if (k < enc->n_added) {
      char *c = enc->added[k].content;
      enc->added[k] = a;
      enc->added[k].content = c;
      enc->added[k].content_len = (uint32_t)len;
      enc->added[k].id = id;
      continue;
    }
    if ((rc = dup_string(h, content, &a.content, &len)) != TOK_OK) return rc;
    a.content_len = (uint32_t)len;
    a.id = id;
    enc->added[enc->n_added++] = a;
  }
  return TOK_OK;
}

/* ---------------------------------------------------------------------------------------
 * Post-processor: the ids it puts before and after a single text.
 */
static tok_err push_ids(hf *h, uint32_t **arr, size_t *n, const uint32_t *ids, size_t k, bool front)
{
  uint32_t *grown = realloc(*arr, (*n + k + 1) * sizeof *grown);
  if (!grown) return tok__nomem(h->err);
  if (front) {
    memmove(grown + k, grown, *n * sizeof *grown);
    memcpy(grown, ids, k * sizeof *ids);
  } else {
    memcpy(grown + *n, ids, k * sizeof *ids);
  }
  *arr = grown;
  *n += k;
  return TOK_OK;
}

/* Wraps the current post ids in prefix and suffix (a processor applied after the others). */
static tok_err wrap(hf *h, const uint32_t *pre, size_t n_pre, const uint32_t *post, size_t n_post)
{
  tok_err rc = push_ids(h, &h->enc->post_prefix, &h->enc->n_post_prefix, pre, n_pre, true);
  if (rc == TOK_OK) rc = push_ids(h, &h->enc->post_suffix, &h->enc->n_post_suffix, post, n_post, false);
  return rc;
}

static tok_err parse_template(hf *h, const cJSON *obj, const char *path)
{
  const cJSON *single = cJSON_GetObjectItemCaseSensitive(obj, "single");
  const cJSON *specials = cJSON_GetObjectItemCaseSensitive(obj, "special_tokens");
  uint32_t pre[64], post[64];
  size_t n_pre = 0, n_post = 0;
  bool seen_a = false;
  if (!cJSON_IsArray(single)) return bad(h, path, "\"single\" must be a list");
  for (const cJSON *piece = single->child; piece; piece = piece->next) {
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(piece, "Sequence");
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(piece, "SpecialToken");
    if (seq) {
      const cJSON *id = cJSON_GetObjectItemCaseSensitive(seq, "id");
      if (!cJSON_IsString(id) || strcmp(id->valuestring, "A") != 0 || seen_a)
        return unsupported(h, path, "a single-sequence template that is not built around $A once");
      seen_a = true;
      continue;
    }
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(sp, "id");
    if (!cJSON_IsString(name)) return bad(h, path, "a template piece must be a Sequence or a SpecialToken");
    const cJSON *entry = cJSON_GetObjectItemCaseSensitive(specials, name->valuestring);
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(entry, "ids");
    if (!cJSON_IsArray(ids))
      return bad(h, path, "special token \"%.60s\" is not in \"special_tokens\"", name->valuestring);
    for (const cJSON *v = ids->child; v; v = v->next) {
      if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble >= UINT32_MAX)
        return bad(h, path, "special token ids must be whole numbers");
      if ((seen_a ? n_post : n_pre) >= 64) return unsupported(h, path, "more than 64 template ids");
      if (seen_a) post[n_post++] = (uint32_t)v->valuedouble;
      else pre[n_pre++] = (uint32_t)v->valuedouble;
    }
  }
  if (!seen_a) return bad(h, path, "\"single\" has no $A");
  return wrap(h, pre, n_pre, post, n_post);
}

/* BertProcessing and RobertaProcessing: cls $A sep. */
static tok_err parse_cls_sep(hf *h, const cJSON *obj, const char *path)
{
  const cJSON *cls = cJSON_GetObjectItemCaseSensitive(obj, "cls");
  const cJSON *sep = cJSON_GetObjectItemCaseSensitive(obj, "sep");
  const cJSON *c = cJSON_GetArrayItem(cls, 1), *s = cJSON_GetArrayItem(sep, 1);
  if (!cJSON_IsNumber(c) || !cJSON_IsNumber(s) || c->valuedouble < 0 || s->valuedouble < 0)
    return bad(h, path, "\"cls\" and \"sep\" must be [token, id]");
  uint32_t pre = (uint32_t)c->valuedouble, post = (uint32_t)s->valuedouble;
  return wrap(h, &pre, 1, &post, 1);
}

static tok_err parse_post(hf *h, const cJSON *obj, const char *path, int depth)
{
  if (!obj || cJSON_IsNull(obj)) return TOK_OK;
  const char *type = type_of(obj);
  if (!type) return bad(h, path, "missing \"type\"");
  if (depth > 8) return bad(h, path, "sequences nested too deeply");
  if (!strcmp(type, "Sequence")) {
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(obj, "processors");
    if (!cJSON_IsArray(list)) return bad(h, path, "\"processors\" must be a list");
    int i = 0;
    for (const cJSON *it = list->child; it; it = it->next, i++) {
      char sub[256];
      snprintf(sub, sizeof sub, "%s.processors[%d]", path, i);
      tok_err rc = parse_post(h, it, sub, depth + 1);
      if (rc != TOK_OK) return rc;
    }
    return TOK_OK;
  }
  if (!strcmp(type, "ByteLevel")) return TOK_OK; /* it only trims offsets */
  if (!strcmp(type, "TemplateProcessing")) return parse_template(h, obj, path);
  if (!strcmp(type, "BertProcessing") || !strcmp(type, "RobertaProcessing")) return parse_cls_sep(h, obj, path);
  char what[96];
  snprintf(what, sizeof what, "post-processor %.40s", type);
  return unsupported(h, path, what);
}

/* ---------------------------------------------------------------------------------------
 * Decoder
 */
static tok_err add_dec(hf *h, tok__dec_step **out)
{
  tok__decoder *d = &h->enc->decoder;
  tok__dec_step *grown = realloc(d->steps, (d->n_steps + 1) * sizeof *grown);
  if (!grown) return tok__nomem(h->err);
  d->steps = grown;
  *out = &grown[d->n_steps++];
  memset(*out, 0, sizeof **out);
  return TOK_OK;
}

static tok_err parse_decoder(hf *h, const cJSON *obj, const char *path, int depth)
{
  if (!obj || cJSON_IsNull(obj)) return TOK_OK;
  const char *type = type_of(obj);
  tok__dec_step *st;
  tok_err rc;
  if (!type) return bad(h, path, "missing \"type\"");
  if (depth > 8) return bad(h, path, "sequences nested too deeply");
  if (!strcmp(type, "Sequence")) {
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(obj, "decoders");
    if (!cJSON_IsArray(list)) return bad(h, path, "\"decoders\" must be a list");
    int i = 0;
    for (const cJSON *it = list->child; it; it = it->next, i++) {
      char sub[256];
      snprintf(sub, sizeof sub, "%s.decoders[%d]", path, i);
      if ((rc = parse_decoder(h, it, sub, depth + 1)) != TOK_OK) return rc;
    }
    return TOK_OK;
  }
  if (!strcmp(type, "ByteLevel") || !strcmp(type, "ByteFallback") || !strcmp(type, "Fuse")) {
    if ((rc = add_dec(h, &st)) != TOK_OK) return rc;
    st->kind = type[4] == 'L' ? TOK__DEC_BYTELEVEL : type[0] == 'B' ? TOK__DEC_BYTE_FALLBACK : TOK__DEC_FUSE;
    return TOK_OK;
  }
  if (!strcmp(type, "Metaspace")) {
    tok__prepend_scheme scheme;
    if ((rc = add_dec(h, &st)) != TOK_OK) return rc;
    st->kind = TOK__DEC_METASPACE;
    if ((rc = get_char(h, obj, "replacement", st->ch, &st->ch_len, path)) != TOK_OK ||
        (rc = get_prepend_scheme(h, obj, path, &scheme)) != TOK_OK)
      return rc;
    st->prepend = scheme != TOK__PREPEND_NEVER;
    return TOK_OK;
  }
  if (!strcmp(type, "Replace")) {
    const char *content = NULL;
    if ((rc = get_string(h, obj, "content", &content, path)) != TOK_OK) return rc;
    if ((rc = add_dec(h, &st)) != TOK_OK) return rc;
    st->kind = TOK__DEC_REPLACE;
    if ((rc = dup_string(h, content, &st->text, &st->text_len)) != TOK_OK) return rc;
    return get_pattern(h, obj, path, &st->re, &st->re_jit, NULL);
  }
  if (!strcmp(type, "Strip")) {
    if ((rc = add_dec(h, &st)) != TOK_OK) return rc;
    st->kind = TOK__DEC_STRIP;
    if ((rc = get_char(h, obj, "content", st->ch, &st->ch_len, path)) != TOK_OK ||
        (rc = get_uint(h, obj, "start", 0, &st->start, path)) != TOK_OK ||
        (rc = get_uint(h, obj, "stop", 0, &st->stop, path)) != TOK_OK)
      return rc;
    return TOK_OK;
  }
  char what[96];
  snprintf(what, sizeof what, "decoder %.40s", type);
  return unsupported(h, path, what);
}

/* ---------------------------------------------------------------------------------------
 * tokenizer_config.json
 */
static const char *config_token(const cJSON *cfg, const char *key)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
  if (cJSON_IsString(v)) return v->valuestring;
  const cJSON *content = cJSON_GetObjectItemCaseSensitive(v, "content");
  return cJSON_IsString(content) ? content->valuestring : NULL;
}

/* transformers writes model_max_length = 1e30 (VERY_LARGE_INTEGER) when a tokenizer has
 * no limit: anything past 2^40 tokens says nothing */
#define MAX_SANE_LEN ((double)(1ull << 40))

static double number_or(const cJSON *obj, const char *key, double dflt)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

/* vLLM's _get_and_verify_max_len (vllm/config/model.py): the smallest of the length keys
 * of config.json (model_max_length there wins), scaled by rope_scaling's factor (yarn from
 * original_max_position_embeddings; su, longrope and llama3 not scaled; gemma3 never), then
 * capped by tokenizer_config.json's model_max_length. Without config.json (vLLM could not
 * serve such a directory) only model_max_length is used; 0 when nothing says. */
static tok_err derive_max_model_len(hf *h, const cJSON *tok_cfg)
{
  double len = INFINITY;
  if (h->model_config[0]) {
    char *text;
    size_t n;
    tok_err rc = tok__read_file(h->model_config, MAX_CONFIG_BYTES, &text, &n, h->err);
    if (rc != TOK_OK) return rc;
    cJSON *cfg = cJSON_ParseWithLength(text, n);
    free(text);
    if (!cJSON_IsObject(cfg)) {
      cJSON_Delete(cfg);
      return tok__fail(h->err, TOK_ETOKENIZER, TOK_NO_POS, TOK_NO_POS, "%s: not a JSON object", h->model_config);
    }
    /* multimodal configs keep the language model's in text_config */
    const cJSON *text_cfg = cJSON_GetObjectItemCaseSensitive(cfg, "text_config");
    const cJSON *c = cJSON_IsObject(text_cfg) ? text_cfg : cfg;
    static const char *const keys[] = {"max_position_embeddings", "n_positions", "max_seq_len", "seq_length",
                                       "model_max_length", "max_target_positions", "max_sequence_length",
                                       "max_seq_length", "seq_len"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) len = fmin(len, number_or(c, keys[i], INFINITY));
    double mml = number_or(c, "model_max_length", 0);
    if (mml > 0) len = mml;
    if (isinf(len)) len = 2048; /* vLLM's default when no key is found */
    const cJSON *rope = cJSON_GetObjectItemCaseSensitive(c, "rope_scaling");
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(c, "model_type");
    bool gemma3 = cJSON_IsString(mt) && strstr(mt->valuestring, "gemma3");
    if (cJSON_IsObject(rope) && !gemma3) {
      const cJSON *t = cJSON_GetObjectItemCaseSensitive(rope, "rope_type");
      if (!cJSON_IsString(t)) t = cJSON_GetObjectItemCaseSensitive(rope, "type");
      const char *type = cJSON_IsString(t) ? t->valuestring : "";
      if (strcmp(type, "su") && strcmp(type, "longrope") && strcmp(type, "llama3")) {
        if (!strcmp(type, "yarn")) len = number_or(rope, "original_max_position_embeddings", len);
        len *= number_or(rope, "factor", 1.0);
      }
    }
    cJSON_Delete(cfg);
  }
  double tok_len = tok_cfg ? number_or(tok_cfg, "model_max_length", INFINITY) : INFINITY;
  if (tok_len < MAX_SANE_LEN) len = fmin(len, tok_len);
  h->enc->max_model_len = isinf(len) || len < 1 || len >= MAX_SANE_LEN ? 0 : (uint64_t)len;
  return TOK_OK;
}

static tok_err apply_config(hf *h)
{
  if (h->jinja[0]) {
    char *text;
    size_t len;
    tok_err rc = tok__read_file(h->jinja, MAX_CONFIG_BYTES, &text, &len, h->err);
    if (rc != TOK_OK) return rc;
    h->enc->chat_template = text; /* NUL-terminated by tok__read_file */
  }
  if (!h->config[0]) return derive_max_model_len(h, NULL);
  char *text;
  size_t len;
  tok_err rc = tok__read_file(h->config, MAX_CONFIG_BYTES, &text, &len, h->err);
  if (rc != TOK_OK) return rc;
  cJSON *cfg = cJSON_ParseWithLength(text, len);
  free(text);
  if (!cJSON_IsObject(cfg)) {
    cJSON_Delete(cfg);
    return tok__fail(h->err, TOK_ETOKENIZER, TOK_NO_POS, TOK_NO_POS, "%s: not a JSON object", h->config);
  }
  tok_encoding *enc = h->enc;
  const char *bos = config_token(cfg, "bos_token"), *eos = config_token(cfg, "eos_token");
  if ((bos && !(enc->bos_token = strdup(bos))) || (eos && !(enc->eos_token = strdup(eos)))) {
    cJSON_Delete(cfg);
    return tok__nomem(h->err);
  }
  /* chat_template: a string, or a list of {name, template} (transformers picks "default") */
  const cJSON *ct = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
  const char *tmpl = cJSON_IsString(ct) ? ct->valuestring : NULL;
  if (cJSON_IsArray(ct)) {
    const cJSON *item;
    cJSON_ArrayForEach(item, ct) {
      const cJSON *nm = cJSON_GetObjectItemCaseSensitive(item, "name");
      const cJSON *tx = cJSON_GetObjectItemCaseSensitive(item, "template");
      if (cJSON_IsString(nm) && cJSON_IsString(tx) && !strcmp(nm->valuestring, "default"))
        tmpl = tx->valuestring;
    }
  }
  if (tmpl && !enc->chat_template && !(enc->chat_template = strdup(tmpl))) {
    cJSON_Delete(cfg);
    return tok__nomem(h->err);
  }
  const cJSON *cleanup = cJSON_GetObjectItemCaseSensitive(cfg, "clean_up_tokenization_spaces");
  enc->decoder.cleanup_spaces = cJSON_IsTrue(cleanup);
  const cJSON *cls = cJSON_GetObjectItemCaseSensitive(cfg, "tokenizer_class");
  const char *klass = cJSON_IsString(cls) ? cls->valuestring : "";
  /* The fast tokenizer classes whose constructor calls update_post_processor, which
   * replaces tokenizer.json's post-processor with BOS and EOS as add_bos_token and
   * add_eos_token say (their defaults differ by class; add_eos_token is false in all):
   * LlamaTokenizerFast (and CodeLlama's), GemmaTokenizerFast and CohereTokenizerFast add
   * BOS unless told not to, GPTNeoXTokenizerFast adds nothing unless told. Cohere's
   * tokenizer.json, say, adds <BOS_TOKEN> ... <|END_OF_TURN_TOKEN|> <EOS_TOKEN>, which
   * transformers never uses. */
  static const struct {
    const char *name; /* a prefix of the class name (the slow and the fast class) */
    bool add_bos;
    const char *bos, *eos; /* the class's own defaults, for a config that names none */
  } rebuilds[] = {{"LlamaTokenizer", true, "<s>", "</s>"},
                  {"CodeLlamaTokenizer", true, "<s>", "</s>"},
                  {"GemmaTokenizer", true, "<bos>", "<eos>"},
                  {"CohereTokenizer", true, "<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>"},
                  {"GPTNeoXTokenizer", false, "<|endoftext|>", "<|endoftext|>"}};
  int rebuild = -1;
  for (int i = 0; i < (int)(sizeof rebuilds / sizeof rebuilds[0]) && rebuild < 0; i++)
    if (!strncmp(klass, rebuilds[i].name, strlen(rebuilds[i].name)) &&
        (!klass[strlen(rebuilds[i].name)] || !strcmp(klass + strlen(rebuilds[i].name), "Fast")))
      rebuild = i;
  if (rebuild >= 0) {
    if (!bos) bos = rebuilds[rebuild].bos;
    if (!eos) eos = rebuilds[rebuild].eos;
    if ((!enc->bos_token && !(enc->bos_token = strdup(bos))) || (!enc->eos_token && !(enc->eos_token = strdup(eos)))) {
      cJSON_Delete(cfg);
      return tok__nomem(h->err);
    }
    const cJSON *ab = cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token");
    const cJSON *ae = cJSON_GetObjectItemCaseSensitive(cfg, "add_eos_token");
    bool add_bos = ab ? cJSON_IsTrue(ab) : rebuilds[rebuild].add_bos, add_eos = ae ? cJSON_IsTrue(ae) : false;
    uint32_t bos_id = 0, eos_id = 0;
    if ((add_bos && (!bos || !tok_token_id(enc, bos, strlen(bos), &bos_id))) ||
        (add_eos && (!eos || !tok_token_id(enc, eos, strlen(eos), &eos_id)))) {
      cJSON_Delete(cfg);
      return tok__fail(h->err, TOK_ETOKENIZER, TOK_NO_POS, TOK_NO_POS,
                       "%s: add_bos_token/add_eos_token name a token that is not in the vocabulary",
                       h->config);
    }
    free(enc->post_prefix), free(enc->post_suffix);
    enc->post_prefix = enc->post_suffix = NULL;
    enc->n_post_prefix = enc->n_post_suffix = 0;
    rc = wrap(h, &bos_id, add_bos, &eos_id, add_eos);
  }
  if (rc == TOK_OK) rc = derive_max_model_len(h, cfg);
  cJSON_Delete(cfg);
  return rc;
}

/* ---------------------------------------------------------------------------------------
 * The file
 */
static tok_err resolve_paths(hf *h, const char *path)
{
  struct stat st;
  if (stat(path, &st) != 0)
    return tok__fail(h->err, TOK_EIO, TOK_NO_POS, TOK_NO_POS, "--tokenizer %s=%s: no such file or directory", h->name, path);
  if (S_ISDIR(st.st_mode)) {
    if ((size_t)snprintf(h->file, sizeof h->file, "%s/tokenizer.json", path) >= sizeof h->file ||
        (size_t)snprintf(h->config, sizeof h->config, "%s/tokenizer_config.json", path) >= sizeof h->config)
      return tok__fail(h->err, TOK_EIO, TOK_NO_POS, TOK_NO_POS, "%s: path too long", path);
    if (stat(h->config, &st) != 0) h->config[0] = 0;
    if ((size_t)snprintf(h->jinja, sizeof h->jinja, "%s/chat_template.jinja", path) >= sizeof h->jinja ||
        stat(h->jinja, &st) != 0)
      h->jinja[0] = 0;
    if ((size_t)snprintf(h->model_config, sizeof h->model_config, "%s/config.json", path) >= sizeof h->model_config ||
        stat(h->model_config, &st) != 0)
      h->model_config[0] = 0;
  } else if ((size_t)snprintf(h->file, sizeof h->file, "%s", path) >= sizeof h->file) {
    return tok__fail(h->err, TOK_EIO, TOK_NO_POS, TOK_NO_POS, "%s: path too long", path);
  }
  return TOK_OK;
}

static bool valid_name(const char *s)
{
  size_t n = strlen(s);
  if (n == 0 || n > 128) return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          strchr("_-.:/@+", c)))
      return false;
  }
  return true;
}

tok_err tok__hf_load(const char *name, const char *path, tok_encoding **out_enc,
                     tok__model **out_model, tok_error *err)
{
  hf h = {.name = name, .err = err};
  char *text = NULL;
  size_t len;
  tok__model *model = NULL;
  cJSON *sections[5] = {0}; /* added_tokens, normalizer, pre_tokenizer, post_processor, decoder */
  static const char *const section_names[5] = {"added_tokens", "normalizer", "pre_tokenizer",
                                               "post_processor", "decoder"};
  const char *model_at = NULL;
  size_t model_len = 0;
  bool parsed_early = false;
  tok_err rc;

  if (!valid_name(name))
    return tok__fail(err, TOK_EINVAL, TOK_NO_POS, TOK_NO_POS,
                     "tokenizer name \"%.64s\" must be 1-128 of [A-Za-z0-9_.:/@+-]", name);
  if ((rc = resolve_paths(&h, path)) != TOK_OK) return rc;
  if ((rc = tok__read_file(h.file, MAX_TOKENIZER_BYTES, &text, &len, err)) != TOK_OK) return rc;
  if (!(h.enc = tok__encoding_new(name))) {
    free(text);
    return tok__nomem(err);
  }
  h.enc->info.kind = TOK_KIND_HUGGINGFACE;
  h.enc->default_all_special = true;
  if (!(h.enc->source = strdup(path))) {
    rc = tok__nomem(err);
    goto fail;
  }
  size_t bad_at;
  if (!tok_utf8_valid(text, len, &bad_at)) {
    rc = tok__fail(err, TOK_ETOKENIZER, bad_at, TOK_NO_POS, "%s: invalid UTF-8 at byte %zu", h.file, bad_at);
    goto fail;
  }

  /* top level: find the sections */
  tok__js js = {text, text + len, text, h.file, err};
  tok_buf key = {0};
  if (!tok__js_eat(&js, '{')) {
    rc = tok__js_fail(&js, "a tokenizer.json is a JSON object");
    goto fail;
  }
  if (!tok__js_eat(&js, '}')) {
    do {
      key.len = 0;
      const char *v;
      size_t vl;
      if ((rc = tok__js_string(&js, &key)) != TOK_OK) break;
      if (tok_buf_append(&key, "", 1) != TOK_OK) {
        rc = tok__nomem(err);
        break;
      }
      if (!tok__js_eat(&js, ':')) {
        rc = tok__js_fail(&js, "expected ':'");
        break;
      }
      if (!strcmp(key.data, "model") && sections[1] && sections[2] && !model_at) {
        /* Hugging Face writes the normalizer and pre-tokenizer (which says whether the vocabulary is
         * byte-level) before the model: then the model is read in place, in one pass */
        if ((rc = parse_normalizer(&h, sections[1], "normalizer", 0)) != TOK_OK ||
            (rc = parse_pre(&h, sections[2], "pre_tokenizer", 0)) != TOK_OK)
          break;
        const char *at = js.p;
        if ((rc = scan_model(&h, &js, text, &model)) != TOK_OK) break;
        model_at = at, model_len = (size_t)(js.p - at), parsed_early = true;
        continue;
      }
      if ((rc = tok__js_skip(&js, &v, &vl)) != TOK_OK) break;
      if (!strcmp(key.data, "model")) {
        model_at = v, model_len = vl;
        continue;
      }
      for (int i = 0; i < 5; i++)
        if (!strcmp(key.data, section_names[i])) {
          cJSON_Delete(sections[i]);
          if (!(sections[i] = cJSON_ParseWithLength(v, vl))) {
            rc = bad(&h, section_names[i], "not valid JSON");
            break;
          }
        }
      if (rc != TOK_OK) break;
      if (!strcmp(key.data, "version") && (vl != 5 || memcmp(v, "\"1.0\"", 5) != 0)) {
        rc = bad(&h, "version", "unknown tokenizer version (1.0 is known)");
        break;
      }
      if ((!strcmp(key.data, "truncation") || !strcmp(key.data, "padding")) &&
          !(vl == 4 && memcmp(v, "null", 4) == 0)) {
        rc = unsupported(&h, key.data, "truncation or padding in tokenizer.json (set it to null)");
        break;
      }
    } while (tok__js_eat(&js, ','));
    if (rc == TOK_OK && !tok__js_eat(&js, '}')) rc = tok__js_fail(&js, "expected ',' or '}'");
  }
  tok_buf_free(&key);
  if (rc != TOK_OK) goto fail;
  if (!model_at) {
    rc = bad(&h, "model", "missing");
    goto fail;
  }

  if (!parsed_early) {
    tok__js mj = {model_at, model_at + model_len, text, h.file, err};
    if ((rc = parse_normalizer(&h, sections[1], "normalizer", 0)) != TOK_OK ||
        (rc = parse_pre(&h, sections[2], "pre_tokenizer", 0)) != TOK_OK ||
        (rc = scan_model(&h, &mj, text, &model)) != TOK_OK)
      goto fail;
  }
  free(text);
  text = NULL;
  h.enc->model = model;
  if ((rc = parse_added(&h, sections[0], model)) != TOK_OK) goto fail;
  if ((rc = parse_post(&h, sections[3], "post_processor", 0)) != TOK_OK) goto fail;
  if ((rc = parse_decoder(&h, sections[4], "decoder", 0)) != TOK_OK) goto fail;
  if (h.enc->decoder.n_steps == 0) {
    rc = unsupported(&h, "decoder", "a tokenizer without a decoder");
    goto fail;
  }
  if ((rc = apply_config(&h)) != TOK_OK) goto fail;
  for (size_t i = 0; i < h.enc->n_post_prefix + h.enc->n_post_suffix; i++) {
    uint32_t id = i < h.enc->n_post_prefix ? h.enc->post_prefix[i] : h.enc->post_suffix[i - h.enc->n_post_prefix];
    bool known = id < model->id_end && model->off[id + 1] > model->off[id];
    for (size_t k = 0; !known && k < h.enc->n_added; k++) known = h.enc->added[k].id == id;
    if (!known) {
      rc = bad(&h, "post_processor", "template id %u is not a token", id);
      goto fail;
    }
  }
  if ((rc = tok__encoding_finish(h.enc, err)) != TOK_OK) goto fail;
  for (int i = 0; i < 5; i++) cJSON_Delete(sections[i]);
  *out_enc = h.enc;
  *out_model = model;
  return TOK_OK;

fail:
  for (int i = 0; i < 5; i++) cJSON_Delete(sections[i]);
  free(text);
  if (h.enc) h.enc->model = NULL;
  tok__encoding_free(h.enc);
  tok__model_free(model);
  return rc;
}
