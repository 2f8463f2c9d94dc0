/*
 * encoding.c — the encoding object: one configured pipeline. Loaders fill in the stages
 * (normalizer, added tokens, pre-tokenizer, model, post-processor, decoder);
 * tok__encoding_finish then derives what the request path looks up: the list of special
 * tokens, the id -> added-token map, the two added-token matchers, the normalized form of
 * tokens matched after normalization, and each added token's decoded bytes.
 */
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "core/internal.h"

tok_encoding *tok__encoding_new(const char *name)
{
  tok_encoding *enc = calloc(1, sizeof *enc);
  if (!enc) return NULL;
  enc->aliases = calloc(1, sizeof *enc->aliases);
  enc->name = strdup(name);
  enc->raw_tokens.single_first = enc->norm_tokens.single_first = -1;
  static atomic_ullong serials;
  enc->serial = atomic_fetch_add(&serials, 1) + 1;
  if (!enc->aliases || !enc->name) {
    tok__encoding_free(enc);
    return NULL;
  }
  return enc;
}

static void free_regex(pcre2_code *re)
{
  if (re) pcre2_code_free(re);
}

void tok__encoding_free(tok_encoding *enc)
{
  if (!enc) return;
  free(enc->name);
  for (size_t i = 0; enc->aliases && enc->aliases[i]; i++) free(enc->aliases[i]);
  free(enc->aliases);
  free(enc->source);
  free(enc->pattern);
  free(enc->components_text);
  free(enc->bos_token);
  free(enc->eos_token);
  free(enc->chat_template);
  for (size_t i = 0; i < enc->normalizer.n_steps; i++) {
    free_regex(enc->normalizer.steps[i].re);
    free(enc->normalizer.steps[i].text);
  }
  free(enc->normalizer.steps);
  for (size_t i = 0; i < enc->n_added; i++) {
    tok__added *a = &enc->added[i];
    if (a->match != a->content) free(a->match);
    if (a->decoded != a->content && a->decoded != a->match) free(a->decoded);
    free(a->content);
  }
  free(enc->added);
  free(enc->special);
  tok__matcher_free(&enc->raw_tokens);
  tok__matcher_free(&enc->norm_tokens);
  for (size_t i = 0; i < enc->pre.n_steps; i++) free_regex(enc->pre.steps[i].re);
  free(enc->pre.steps);
  free(enc->post_prefix);
  free(enc->post_suffix);
  for (size_t i = 0; i < enc->decoder.n_steps; i++) {
    free_regex(enc->decoder.steps[i].re);
    free(enc->decoder.steps[i].text);
  }
  free(enc->decoder.steps);
  free(enc->added_bits);
  free(enc->added_sorted);
  free(enc);
}

/* ByteLevel's decoding of one string: the bytes its characters spell, or the string itself
 * when some character is not a byte-level spelling. */
static tok_err bytelevel_decoded(const char *s, size_t len, char **out, size_t *out_len)
{
  char *d = malloc(len + 1);
  if (!d) return TOK_ENOMEM;
  size_t i = 0, o = 0;
  while (i < len) {
    int b = tok__char_byte(tok__utf8_next((const uint8_t *)s, len, &i));
    if (b < 0) break;
    d[o++] = (char)b;
  }
  if (i < len || (len && o == 0)) {
    memcpy(d, s, len);
    o = len;
  }
  d[o] = '\0';
  *out = d;
  *out_len = o;
  return TOK_OK;
}

static const char *norm_name(tok__norm_kind k)
{
  static const char *const names[] = {"NFC", "NFD", "NFKC", "NFKD", "Lowercase", "Replace",
                                      "Prepend", "Strip", "StripAccents"};
  return names[k];
}

static const char *pre_name(const tok__pre_step *st)
{
  static const char *const behaviors[] = {"Removed", "Isolated", "MergedWithPrevious",
                                          "MergedWithNext", "Contiguous"};
  switch (st->kind) {
  case TOK__PRE_SPLIT: return behaviors[st->behavior];
  case TOK__PRE_TIKTOKEN: return "regex";
  case TOK__PRE_BYTELEVEL: return "ByteLevel";
  case TOK__PRE_METASPACE: return "Metaspace";
  case TOK__PRE_DIGITS: return "Digits";
  case TOK__PRE_WHITESPACE: return "Whitespace";
  case TOK__PRE_WHITESPACE_SPLIT: return "WhitespaceSplit";
  case TOK__PRE_PUNCTUATION: return "Punctuation";
  default: return "?";
  }
}

static const char *dec_name(tok__dec_kind k)
{
  static const char *const names[] = {"ByteLevel", "Metaspace", "Replace", "ByteFallback", "Fuse", "Strip"};
  return names[k];
}

/* Writes the five component lines into one allocation; info points into it. */
static tok_err describe(tok_encoding *enc)
{
  char buf[2048];
  size_t o = 0;
  const char *parts[5];
  size_t starts[5];
#define ADD(...) o += (size_t)snprintf(buf + o, o < sizeof buf ? sizeof buf - o : 0, __VA_ARGS__)
  starts[0] = o;
  for (size_t i = 0; i < enc->normalizer.n_steps; i++)
    ADD("%s%s", i ? ", " : "", norm_name(enc->normalizer.steps[i].kind));
  ADD("%c", 0);
  starts[1] = o;
  for (size_t i = 0; i < enc->pre.n_steps; i++) {
    const tok__pre_step *st = &enc->pre.steps[i];
    ADD("%s%s%s%s", i ? ", " : "", st->kind == TOK__PRE_SPLIT ? "Split(" : "", pre_name(st),
        st->kind == TOK__PRE_SPLIT ? ")" : "");
  }
  ADD("%c", 0);
  starts[2] = o;
  const tok__model *m = enc->model;
  ADD("BPE(%s%s%s%s%s)", m->byte_level ? "byte_level" : "char_level",
      m->by_list ? (m->whole_ok ? ", merges" : ", merges, ignore_merges") : ", ranks",
      m->byte_fallback ? ", byte_fallback" : "", m->unk_id != TOK__NONE ? ", unk" : "",
      m->fuse_unk ? ", fuse_unk" : "");
  ADD("%c", 0);
  starts[3] = o;
  if (enc->n_post_prefix || enc->n_post_suffix) ADD("TemplateProcessing");
  ADD("%c", 0);
  starts[4] = o;
  for (size_t i = 0; i < enc->decoder.n_steps; i++)
    ADD("%s%s", i ? ", " : "", dec_name(enc->decoder.steps[i].kind));
  if (enc->decoder.cleanup_spaces) ADD("%sclean_up_tokenization_spaces", enc->decoder.n_steps ? ", " : "");
  ADD("%c", 0);
#undef ADD
  if (o >= sizeof buf) o = sizeof buf - 1, buf[o] = 0;
  if (!(enc->components_text = malloc(o + 1))) return TOK_ENOMEM;
  memcpy(enc->components_text, buf, o + 1);
  for (int i = 0; i < 5; i++) parts[i] = enc->components_text + starts[i];
  enc->info.normalizer = parts[0];
  enc->info.pre_tokenizer = parts[1];
  enc->info.model = parts[2];
  enc->info.post_processor = parts[3];
  enc->info.decoder = parts[4];
  return TOK_OK;
}

static int cmp_pair(const void *a, const void *b)
{
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x > y) - (x < y);
}

const tok__added *tok__added_of(const tok_encoding *enc, uint32_t id)
{
  if (id >= enc->id_end_all || !tok__bit(enc->added_bits, id)) return NULL;
  size_t lo = 0, hi = enc->n_added;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (enc->added_sorted[2 * mid] < id) lo = mid + 1;
    else hi = mid;
  }
  return &enc->added[enc->added_sorted[2 * lo + 1]];
}

/* May a long text be encoded in parts cut at tok__split_point (encode.c), with the same
 * result? True when every stage provably starts afresh at a space between two letters:
 * no normalizer but Unicode normalization forms (the cut's letters are ones no form
 * changes or composes with what precedes them, tok__nf_stable, and a space is such a
 * character too, so the parts normalize to the cuts of the whole); a byte-level model that merges within pieces; every pre-tokenizer step a
 * pattern with a hand-written scanner (those patterns end a letter run at a space and
 * start the next piece at that space, and DeepSeek's digit and CJK steps leave such a
 * space inside a gap), applied as Isolated splits or tiktoken's matches, or GPT-2's
 * ByteLevel (whose prefix space is never added to a piece that starts with one); and no
 * added token that could cover the cut (one containing a space) or that looks at its
 * neighbours (lstrip, rstrip, single_word). */
static bool split_safe(const tok_encoding *enc)
{
  if (!enc->model->byte_level || enc->model->split_words || enc->pre.n_steps == 0) return false;
  for (size_t i = 0; i < enc->normalizer.n_steps; i++) {
    tok__norm_kind k = enc->normalizer.steps[i].kind;
    if (k != TOK__NORM_NFC && k != TOK__NORM_NFKC && k != TOK__NORM_NFD && k != TOK__NORM_NFKD)
      return false;
  }
  for (size_t i = 0; i < enc->pre.n_steps; i++) {
    const tok__pre_step *st = &enc->pre.steps[i];
    bool ok = st->kind == TOK__PRE_TIKTOKEN ? st->scan != TOK__SCAN_NONE
              : st->kind == TOK__PRE_SPLIT
                  ? st->scan != TOK__SCAN_NONE && !st->invert && st->behavior == TOK__SPLIT_ISOLATED
              : st->kind == TOK__PRE_BYTELEVEL ? !st->re || st->scan == TOK__SCAN_GPT2
                                               : false;
    if (!ok) return false;
  }
  for (size_t i = 0; i < enc->n_added; i++) {
    const tok__added *a = &enc->added[i];
    if (a->lstrip || a->rstrip || a->single_word || memchr(a->content, ' ', a->content_len))
      return false;
  }
  return true;
}

tok_err tok__encoding_finish(tok_encoding *enc, tok_error *err)
{
  const tok__model *m = enc->model;
  size_t n_special = 0;
  uint32_t id_end = m->id_end;
  for (size_t i = 0; i < enc->n_added; i++) {
    tok__added *a = &enc->added[i];
    a->special_index = a->special ? (uint32_t)n_special++ : TOK__NONE;
    if (a->id >= id_end) id_end = a->id + 1;
    if (a->content_len == 0)
      return tok__fail(err, TOK_ETOKENIZER, TOK_NO_POS, i, "%s: added token %zu is empty", enc->name, i);
  }
  if (n_special > TOK_MAX_SPECIAL)
    return tok__fail(err, TOK_EUNSUPPORTED, TOK_NO_POS, TOK_NO_POS,
                     "%s: %zu special tokens; at most %d are supported", enc->name, n_special,
                     TOK_MAX_SPECIAL);
  enc->id_end_all = id_end;
  /* a bit per id plus a sorted list, rather than an index per id: o200k has 200,019 ids
   * and 2 added tokens */
  if (!(enc->added_bits = calloc(((size_t)id_end + 63) / 64, sizeof *enc->added_bits)) ||
      !(enc->added_sorted = malloc(2 * (enc->n_added + 1) * sizeof *enc->added_sorted)) ||
      !(enc->special = calloc(n_special ? n_special : 1, sizeof *enc->special)))
    return tok__nomem(err);
  bool tiktoken = enc->info.kind == TOK_KIND_TIKTOKEN;
  for (size_t i = 0; i < enc->pre.n_steps; i++)
    if (enc->pre.steps[i].kind == TOK__PRE_METASPACE && enc->pre.steps[i].prepend == TOK__PREPEND_FIRST)
      enc->needs_align = true;
  enc->splits = split_safe(enc);
  enc->decoder.bytes_only =
      m->byte_level && (tiktoken || (enc->decoder.n_steps == 1 &&
                                     enc->decoder.steps[0].kind == TOK__DEC_BYTELEVEL));
  for (size_t i = 0; i < enc->n_added; i++) {
    tok__added *a = &enc->added[i];
    tok__bit_set(enc->added_bits, a->id);
    enc->added_sorted[2 * i] = a->id;
    enc->added_sorted[2 * i + 1] = (uint32_t)i;
    if (a->special) enc->special[a->special_index] = (tok_special_token){a->content, a->content_len, a->id};
    a->match = a->content;
    a->match_len = a->content_len;
    if (a->normalized && enc->normalizer.n_steps) {
      size_t len;
      char *normed;
      tok_err rc = tok__normalize_alloc(&enc->normalizer, a->content, a->content_len, &normed, &len, err);
      if (rc != TOK_OK) return rc;
      if (len == a->content_len && memcmp(normed, a->content, len) == 0) {
        free(normed);
      } else {
        a->match = normed;
        a->match_len = (uint32_t)len;
      }
    }
    /* what the decode fast path emits for it */
    a->decoded = a->content;
    a->decoded_len = a->content_len;
    if (enc->decoder.bytes_only && !tiktoken) {
      size_t len;
      char *d;
      if (bytelevel_decoded(a->normalized ? a->match : a->content,
                            a->normalized ? a->match_len : a->content_len, &d, &len) != TOK_OK)
        return tok__nomem(err);
      a->decoded = d;
      a->decoded_len = (uint32_t)len;
    }
  }
  qsort(enc->added_sorted, enc->n_added, 2 * sizeof *enc->added_sorted, cmp_pair);
  tok_err rc = tok__matcher_build(&enc->raw_tokens, enc->added, enc->n_added, false, err);
  if (rc == TOK_OK) rc = tok__matcher_build(&enc->norm_tokens, enc->added, enc->n_added, true, err);
  if (rc != TOK_OK) return rc;
  if (describe(enc) != TOK_OK) return tok__nomem(err);

  enc->info.name = enc->name;
  enc->info.aliases = (const char *const *)enc->aliases;
  enc->info.source = enc->source;
  enc->info.pattern = enc->pattern;
  enc->info.sha256 = enc->sha256;
  enc->info.n_ranks = m->n_tokens;
  enc->info.n_vocab = id_end;
  enc->info.n_special = n_special;
  enc->info.special = enc->special;
  enc->info.n_added = enc->n_added;
  enc->info.bos_token = enc->bos_token;
  enc->info.eos_token = enc->eos_token;
  enc->info.chat_template = enc->chat_template;
  enc->info.max_model_len = enc->max_model_len;
  return TOK_OK;
}

const tok_encoding_info *tok_encoding_get_info(const tok_encoding *enc) { return &enc->info; }

bool tok_token_id(const tok_encoding *enc, const char *text, size_t text_len, uint32_t *id)
{
  for (size_t i = 0; i < enc->n_added; i++)
    if (enc->added[i].content_len == text_len && memcmp(enc->added[i].content, text, text_len) == 0) {
      *id = enc->added[i].id;
      return true;
    }
  const tok__model *m = enc->model;
  uint32_t found = TOK__NONE;
  if (m->byte_level) {
    /* the text is a byte-level spelling when every character spells a byte */
    uint8_t bytes[1024];
    size_t i = 0, n = 0;
    while (i < text_len && n < sizeof bytes) {
      int b = tok__char_byte(tok__utf8_next((const uint8_t *)text, text_len, &i));
      if (b < 0) break;
      bytes[n++] = (uint8_t)b;
    }
    if (i == text_len && n) found = tok__model_find(m, bytes, n);
    if (found != TOK__NONE && m->literal && tok__bit(m->literal, found)) found = TOK__NONE;
    if (found == TOK__NONE && m->literal) {
      found = tok__model_find(m, (const uint8_t *)text, text_len);
      if (found != TOK__NONE && !tok__bit(m->literal, found)) found = TOK__NONE;
    }
  } else {
    found = tok__model_find(m, (const uint8_t *)text, text_len);
  }
  if (found == TOK__NONE) return false;
  *id = found;
  return true;
}
