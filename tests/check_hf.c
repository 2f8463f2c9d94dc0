/* check_hf.c — Hugging Face tokenizers: exact equality with npm `tokenizers` for six open
 * models (golden vectors from tests/tools/gen_hf_golden.mjs), decoding, token strings,
 * tokenizer_config.json, and the refusal of every component tokd does not implement.
 *
 * The models (~1 GB) are fetched by tests/tools/fetch_models.sh into ../build/models (or
 * $TOKD_MODELS_DIR); without them the model tests say so and pass, unless
 * TOKD_REQUIRE_MODELS=1 (set by .ci/run), which makes their absence a failure. */
#include <cjson/cJSON.h>
#include <sys/stat.h>

#include "testutil.h"

/* the eight open models, then the small tokenizers committed in data/hf/tiny, which use the
 * components the models do not */
const char *const TU_HF_MODELS[TU_N_HF_MODELS] = {"llama3_1", "qwen3", "deepseek_v3", "gemma3",
                                                  "llama2", "gptoss", "mistral_nemo", "command_r_plus", "tiny/sp", "tiny/bl", "tiny/ws"};

static const tok_encoding *model_or_skip(const char *model) { return tu_hf_model_or_skip(model); }

/* memcmp that accepts NULL for empty buffers (an empty tok_buf has no data) */
static bool same_bytes(const void *a, size_t a_len, const void *b, size_t b_len)
{
  return a_len == b_len && (a_len == 0 || memcmp(a, b, a_len) == 0);
}

static void compare_ids(const char *what, const uint32_t *got, size_t got_n, const uint32_t *want,
                        size_t want_n)
{
  size_t i = 0;
  while (i < got_n && i < want_n && got[i] == want[i]) i++;
  ck_assert_msg(got_n == want_n && i == want_n,
                "%s: %zu ids, reference %zu, first difference at index %zu (%u vs %u)", what, got_n,
                want_n, i, i < got_n ? got[i] : 0, i < want_n ? want[i] : 0);
}

static void check_file(const tok_encoding *enc, tok_scratch *s, const char *model,
                       const char *text_path, const char *ids_path, bool add_special,
                       const char *decoded_path)
{
  size_t text_len, golden_len, want_n;
  char *text = tu_read_file(text_path, &text_len);
  char *golden = tu_read_file(ids_path, &golden_len);
  uint32_t *want = tu_parse_ids(golden, &want_n);
  tok_encode_opts opts = {.add_special_tokens = add_special};
  tok_encode_result r;
  tok_error err;
  ck_assert_msg(tok_encode(enc, s, text, text_len, &opts, &r, &err) == TOK_OK, "%s %s: %s", model,
                text_path, err.detail);
  char what[600];
  snprintf(what, sizeof what, "%s %s%s", model, text_path, add_special ? " (add_special_tokens)" : "");
  compare_ids(what, r.ids, r.len, want, want_n);
  /* the count path agrees */
  size_t n;
  ck_assert_int_eq(tok_count(enc, s, text, text_len, &opts, &n, NULL, &err), TOK_OK);
  ck_assert_uint_eq(n, want_n);
  if (decoded_path) {
    /* decode gives Hugging Face's text: the text itself, or what the .decoded file says */
    struct stat st;
    size_t expect_len = text_len;
    char *expect = text, *other = NULL;
    if (stat(decoded_path, &st) == 0) expect = other = tu_read_file(decoded_path, &expect_len);
    tok_buf out = {0};
    ck_assert_int_eq(tok_decode_text(enc, s, want, want_n, NULL, &out, &err), TOK_OK);
    ck_assert_msg(same_bytes(out.data, out.len, expect, expect_len), "%s: decode differs from Hugging Face", what);
    tok_buf_free(&out);
    free(other);
  }
  free(want);
  free(golden);
  free(text);
}

/* Protects: identical ids to Hugging Face on every corpus file (prose in ~50 scripts, code,
 * CJK, emoji, long runs, random code points), with and without add_special_tokens, and
 * decode giving Hugging Face's text back. */
START_TEST(test_hf_golden)
{
  const char *model = TU_HF_MODELS[_i];
  const tok_encoding *enc = model_or_skip(model);
  if (!enc) return;
  tok_scratch *s = tok_scratch_new(NULL);
  int files = 0;
  for (const char *const *name = tu_corpus(); *name; name++) {
    char text[512], ids[512], decoded[512], special[512];
    snprintf(text, sizeof text, "data/corpus/%s", *name);
    snprintf(ids, sizeof ids, "data/hf/%s/%s.ids", model, *name);
    snprintf(decoded, sizeof decoded, "data/hf/%s/%s.decoded", model, *name);
    snprintf(special, sizeof special, "data/hf/%s/special/%s.ids", model, *name);
    check_file(enc, s, model, text, ids, false, decoded);
    struct stat st;
    if (stat(special, &st) == 0) check_file(enc, s, model, text, special, true, NULL);
    files++;
  }
  ck_assert_int_ge(files, 30);
  tok_scratch_free(s);
}
END_TEST

/* Protects: every added token of the model (special or not) is matched as Hugging Face
 * matches it, between spaces and glued to letters. */
START_TEST(test_hf_added_tokens)
{
  const char *model = TU_HF_MODELS[_i];
  const tok_encoding *enc = model_or_skip(model);
  if (!enc) return;
  tok_scratch *s = tok_scratch_new(NULL);
  char text[512], ids[512];
  snprintf(text, sizeof text, "data/hf/%s/added.txt", model);
  snprintf(ids, sizeof ids, "data/hf/%s/added.ids", model);
  check_file(enc, s, model, text, ids, false, NULL);
  tok_scratch_free(s);
}
END_TEST

static cJSON *next_json_line(char **p)
{
  char *nl = strchr(*p, '\n');
  if (!nl) return NULL;
  *nl = '\0';
  cJSON *j = cJSON_Parse(*p);
  *p = nl + 1;
  return j;
}

/* Protects: the decoder (ByteLevel, or Replace + ByteFallback + Fuse + Strip, with
 * special tokens kept or skipped) gives Hugging Face's text for arbitrary id lists,
 * including lone <0xNN> bytes that are not valid UTF-8. */
START_TEST(test_hf_decode)
{
  const char *model = TU_HF_MODELS[_i];
  const tok_encoding *enc = model_or_skip(model);
  if (!enc) return;
  tok_scratch *s = tok_scratch_new(NULL);
  char path[512];
  size_t len;
  snprintf(path, sizeof path, "data/hf/%s/decode.jsonl", model);
  char *data = tu_read_file(path, &len), *p = data;
  int lines = 0;
  for (cJSON *j; (j = next_json_line(&p)); cJSON_Delete(j), lines++) {
    const cJSON *ids = cJSON_GetObjectItem(j, "ids");
    size_t n = (size_t)cJSON_GetArraySize(ids), k = 0;
    uint32_t *v = malloc((n + 1) * sizeof *v);
    for (const cJSON *it = ids->child; it; it = it->next) v[k++] = (uint32_t)it->valuedouble;
    for (int skip = 0; skip < 2; skip++) {
      const char *hex = cJSON_GetObjectItem(j, skip ? "skip" : "text")->valuestring;
      size_t want_len = strlen(hex) / 2;
      char *want = malloc(want_len + 1);
      for (size_t b = 0; b < want_len; b++) {
        unsigned byte;
        sscanf(hex + 2 * b, "%2x", &byte);
        want[b] = (char)byte;
      }
      tok_buf out = {0};
      tok_error err;
      tok_decode_opts o = {.skip_special_tokens = skip};
      ck_assert_msg(tok_decode_text(enc, s, v, n, &o, &out, &err) == TOK_OK, "%s", err.detail);
      ck_assert_msg(same_bytes(out.data, out.len, want, want_len),
                    "%s line %d (skip %d): got \"%.*s\", want \"%.*s\"", model, lines + 1, skip,
                    (int)out.len, out.data, (int)want_len, want);
      tok_buf_free(&out);
      free(want);
    }
    free(v);
  }
  ck_assert_int_ge(lines, 100);
  free(data);
  tok_scratch_free(s);
}
END_TEST

/* Protects: token strings are Hugging Face's (byte-level spellings, ▁ words, <0xNN>). */
START_TEST(test_hf_token_strings)
{
  const char *model = TU_HF_MODELS[_i];
  const tok_encoding *enc = model_or_skip(model);
  if (!enc) return;
  char path[512];
  size_t len;
  snprintf(path, sizeof path, "data/hf/%s/tokens.jsonl", model);
  char *data = tu_read_file(path, &len), *p = data;
  for (cJSON *j; (j = next_json_line(&p)); cJSON_Delete(j)) {
    const cJSON *ids = cJSON_GetObjectItem(j, "ids"), *toks = cJSON_GetObjectItem(j, "tokens");
    const cJSON *t = toks->child;
    for (const cJSON *it = ids->child; it; it = it->next, t = t->next) {
      tok_buf out = {0};
      ck_assert_int_eq(tok_token_string(enc, (uint32_t)it->valuedouble, &out), TOK_OK);
      ck_assert_msg(same_bytes(out.data, out.len, t->valuestring, strlen(t->valuestring)),
                    "%s id %u: \"%.*s\" vs \"%s\"", model, (uint32_t)it->valuedouble, (int)out.len,
                    out.data, t->valuestring);
      tok_buf_free(&out);
    }
  }
  free(data);
}
END_TEST

/* ---------------------------------------------------------------------------------------
 * Small tokenizer.json files written by the tests
 */
#define TINY_MODEL                                                                            \
  "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,\"fuse_unk\":false,"        \
  "\"byte_fallback\":false,\"ignore_merges\":false,\"vocab\":{\"a\":0,\"b\":1,\"c\":2,"         \
  "\"ab\":3,\"abc\":4,\"\\u0120\":5,\"\\u0120a\":6},\"merges\":[\"a b\",\"ab c\",[\"\\u0120\",\"a\"]]}"

static tok_err load_tiny(const char *sections, tok_registry **reg, tok_error *err)
{
  const char *dir = tu_tempdir();
  char *json = malloc(strlen(sections) + 4096);
  sprintf(json, "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,%s%s" TINY_MODEL "}",
          sections, *sections ? "," : "");
  tu_write(dir, "tokenizer.json", json);
  free(json);
  char path[600];
  snprintf(path, sizeof path, "%s/tokenizer.json", dir);
  tok_tokenizer_source src = {"tiny", path};
  tok_load_opts opts = {.encodings = "none", .tokenizers = &src, .n_tokenizers = 1};
  return tok_registry_load(&opts, reg, err);
}

/* Protects: a tiny byte-level tokenizer.json loads and merges by its list. */
START_TEST(test_hf_tiny)
{
  tok_registry *reg;
  tok_error err;
  ck_assert_msg(load_tiny("\"added_tokens\":[{\"id\":7,\"content\":\"<x>\",\"single_word\":false,"
                          "\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true}],"
                          "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
                          "\"trim_offsets\":true,\"use_regex\":true},"
                          "\"decoder\":{\"type\":\"ByteLevel\"}",
                          &reg, &err) == TOK_OK,
                "%s", err.detail);
  const tok_encoding *enc = tok_registry_find(reg, "tiny", 4);
  tok_scratch *s = tok_scratch_new(NULL);
  tok_encode_result r;
  ck_assert_int_eq(tok_encode(enc, s, "abc ab<x>cab", 12, NULL, &r, &err), TOK_OK);
  uint32_t want[] = {4, 5, 3, 7, 2, 3}; /* " ab": "a b" merges before "\u0120 a" */
  compare_ids("tiny", r.ids, r.len, want, 6);
  ck_assert_str_eq(tok_encoding_get_info(enc)->pre_tokenizer, "ByteLevel");
  tok_buf out = {0};
  ck_assert_int_eq(tok_decode_text(enc, s, r.ids, r.len, NULL, &out, &err), TOK_OK);
  ck_assert(out.len == 12 && !memcmp(out.data, "abc ab<x>cab", 12));
  tok_buf_free(&out);
  tok_scratch_free(s);
  tok_registry_free(reg);
}
END_TEST

/* Protects: a piece with a character the vocabulary lacks (no unknown token, no byte
 * fallback) comes out as one id over part of it; the piece cache, filled without offsets,
 * never gives that id the whole piece's offsets. */
START_TEST(test_hf_piece_cache_partial)
{
  tok_registry *reg;
  tok_error err;
  ck_assert_msg(load_tiny("\"pre_tokenizer\":{\"type\":\"WhitespaceSplit\"},\"decoder\":{\"type\":\"Fuse\"}",
                          &reg, &err) == TOK_OK,
                "%s", err.detail);
  const tok_encoding *enc = tok_registry_find(reg, "tiny", 4);
  tok_scratch *s = tok_scratch_new(NULL);
  tok_encode_opts with_offsets = {.want_offsets = true};
  tok_encode_result r;
  const char *text = "abx abx abc abx";
  for (int round = 0; round < 3; round++) {
    ck_assert_int_eq(tok_encode(enc, s, text, strlen(text), round == 1 ? &with_offsets : NULL, &r, &err), TOK_OK);
    uint32_t want[] = {3, 3, 4, 3};
    compare_ids("tiny", r.ids, r.len, want, 4);
    if (round == 1) {
      uint32_t offs[] = {0, 2, 4, 6, 8, 11, 12, 14};
      ck_assert(memcmp(r.offsets, offs, sizeof offs) == 0);
    }
  }
  ck_assert_int_eq(tok_encode(enc, s, text, strlen(text), &with_offsets, &r, &err), TOK_OK);
  ck_assert(r.len == 4 && r.offsets[1] == 2 && r.offsets[7] == 14);
  tok_scratch_free(s);
  tok_registry_free(reg);
}
END_TEST

static void expect_refused(const char *sections, tok_err code, const char *needle)
{
  tok_registry *reg = NULL;
  tok_error err;
  tu_assert_refused(load_tiny(sections, &reg, &err), reg, &err, code, needle);
}

/* Protects: each component tokd does not implement is refused at load, naming it and its
 * JSON path, never silently ignored. */
START_TEST(test_hf_unsupported)
{
  expect_refused("\"normalizer\":{\"type\":\"BertNormalizer\"}", TOK_EUNSUPPORTED, "normalizer: normalizer BertNormalizer");
  expect_refused("\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFC\"},{\"type\":\"Precompiled\"}]}",
                 TOK_EUNSUPPORTED, "normalizer.normalizers[1]: normalizer Precompiled");
  expect_refused("\"normalizer\":{\"type\":\"Nmt\"}", TOK_EUNSUPPORTED, "Nmt");
  expect_refused("\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Digits\"},{\"type\":\"UnicodeScripts\"}]}",
                 TOK_EUNSUPPORTED, "pre_tokenizer.pretokenizers[1]: pre-tokenizer UnicodeScripts");
  expect_refused("\"pre_tokenizer\":{\"type\":\"CharDelimiterSplit\",\"delimiter\":\"x\"}", TOK_EUNSUPPORTED, "CharDelimiterSplit");
  expect_refused("\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"ByteLevel\"},{\"type\":\"Digits\"}]}",
                 TOK_EUNSUPPORTED, "after ByteLevel");
  expect_refused("\"post_processor\":{\"type\":\"Weird\"}", TOK_EUNSUPPORTED, "post_processor: post-processor Weird");
  expect_refused("\"decoder\":{\"type\":\"WordPiece\"}", TOK_EUNSUPPORTED, "decoder: decoder WordPiece");
  expect_refused("\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Fuse\"},{\"type\":\"CTC\"}]}",
                 TOK_EUNSUPPORTED, "decoder.decoders[1]: decoder CTC");
  expect_refused("\"decoder\":{\"type\":\"BPEDecoder\"}", TOK_EUNSUPPORTED, "BPEDecoder");
  expect_refused("", TOK_EUNSUPPORTED, "without a decoder");
  expect_refused("\"padding\":{\"strategy\":\"BatchLongest\"}", TOK_EUNSUPPORTED, "padding");
  /* the model's own options */
  const char *dir = tu_tempdir();
  tu_write(dir, "tokenizer.json",
           "{\"model\":{\"type\":\"WordPiece\",\"vocab\":{\"a\":0}},\"decoder\":{\"type\":\"Fuse\"}}");
  char path[600];
  snprintf(path, sizeof path, "%s/tokenizer.json", dir);
  tok_tokenizer_source src = {"wp", path};
  tok_load_opts opts = {.encodings = "none", .tokenizers = &src, .n_tokenizers = 1};
  tok_registry *reg = NULL;
  tok_error err;
  ck_assert_int_eq(tok_registry_load(&opts, &reg, &err), TOK_EUNSUPPORTED);
  ck_assert(strstr(err.detail, "model.type: model WordPiece") != NULL);
  tu_write(dir, "tokenizer.json",
           "{\"model\":{\"type\":\"BPE\",\"dropout\":0.1,\"vocab\":{\"a\":0}},\"decoder\":{\"type\":\"Fuse\"}}");
  ck_assert_int_eq(tok_registry_load(&opts, &reg, &err), TOK_EUNSUPPORTED);
  ck_assert(strstr(err.detail, "dropout") != NULL);
  tu_write(dir, "tokenizer.json",
           "{\"model\":{\"type\":\"BPE\",\"continuing_subword_prefix\":\"##\",\"vocab\":{\"a\":0}},\"decoder\":{\"type\":\"Fuse\"}}");
  ck_assert_int_eq(tok_registry_load(&opts, &reg, &err), TOK_EUNSUPPORTED);
  ck_assert(strstr(err.detail, "continuing_subword_prefix") != NULL);
}
END_TEST

/* Protects: malformed files are refused with what and where, not loaded half-way. */
START_TEST(test_hf_malformed)
{
  static const struct { const char *json, *needle; } cases[] = {
      {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"a c\"]},\"decoder\":{\"type\":\"Fuse\"}}",
       "model.merges[0]"},
      {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a  b\"]},\"decoder\":{\"type\":\"Fuse\"}}",
       "one space"},
      {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":0}},\"decoder\":{\"type\":\"Fuse\"}}", "appears twice"},
      {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-1}},\"decoder\":{\"type\":\"Fuse\"}}", "whole number"},
      {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"\\ud800\":0}},\"decoder\":{\"type\":\"Fuse\"}}", "surrogate"},
      {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}}", "expected"},
      {"{\"version\":\"2.0\",\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}},\"decoder\":{\"type\":\"Fuse\"}}", "version"},
      {"{\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(\"},\"behavior\":\"Isolated\",\"invert\":false},"
       "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}},\"decoder\":{\"type\":\"Fuse\"}}",
       "pre_tokenizer.pattern"},
      {"{\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"vocab\":{\"a\":0}},\"decoder\":{\"type\":\"Fuse\"}}", "unk_token"},
      {"[1,2]", "JSON object"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *dir = tu_tempdir();
    tu_write(dir, "tokenizer.json", cases[i].json);
    char path[600];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    tok_tokenizer_source src = {"bad", path};
    tok_load_opts opts = {.encodings = "none", .tokenizers = &src, .n_tokenizers = 1};
    tok_registry *reg = NULL;
    tok_error err;
    ck_assert_msg(tok_registry_load(&opts, &reg, &err) != TOK_OK, "case %zu loaded", i);
    ck_assert_msg(strstr(err.detail, cases[i].needle) != NULL, "case %zu: \"%s\" lacks \"%s\"", i,
                  err.detail, cases[i].needle);
  }
}
END_TEST

/* Protects: a model directory applies tokenizer_config.json as transformers does:
 * DeepSeek-V3 (LlamaTokenizerFast, add_bos_token) gets its BOS; Llama 3.1 keeps its
 * template; clean_up_tokenization_spaces reaches the decoder. */
START_TEST(test_hf_config)
{
  const tok_encoding *ds = tu_hf_dir_encoding("deepseek_v3");
  const tok_encoding *ll = tu_hf_dir_encoding("llama3_1");
  if (!ds || !ll) {
    model_or_skip("deepseek_v3");
    return;
  }
  tok_scratch *s = tok_scratch_new(NULL);
  tok_encode_opts opts = {.add_special_tokens = true};
  tok_encode_result r;
  tok_error err;
  ck_assert_int_eq(tok_encode(ds, s, "Hello", 5, &opts, &r, &err), TOK_OK);
  ck_assert_uint_eq(r.len, 2);
  ck_assert_uint_eq(r.ids[0], 0); /* <｜begin▁of▁sentence｜> */
  ck_assert_str_eq(tok_encoding_get_info(ds)->bos_token, "<｜begin▁of▁sentence｜>");
  ck_assert_int_eq(tok_encode(ll, s, "Hello", 5, &opts, &r, &err), TOK_OK);
  ck_assert_uint_eq(r.ids[0], 128000);
  /* Llama 3's config turns on transformers' clean-up: " ," loses its space */
  ck_assert_int_eq(tok_encode(ll, s, "Hello , world", 13, NULL, &r, &err), TOK_OK);
  tok_buf out = {0};
  ck_assert_int_eq(tok_decode_text(ll, s, r.ids, r.len, NULL, &out, &err), TOK_OK);
  ck_assert_msg(out.len == 12 && !memcmp(out.data, "Hello, world", 12), "%.*s", (int)out.len, out.data);
  tok_buf_free(&out);
  tok_scratch_free(s);
}
END_TEST

/* Protects: the tokenizer classes whose transformers constructor rebuilds the
 * post-processor (update_post_processor) get BOS/EOS from add_bos_token/add_eos_token with
 * their class's defaults (add_bos_token, and the BOS/EOS tokens when the config names
 * none); other classes keep tokenizer.json's (tiny/bl: RobertaProcessing, <s> ... </s>). */
START_TEST(test_hf_config_post_processor)
{
  static const struct {
    const char *config;
    uint32_t first, last; /* UINT32_MAX: a text token */
  } cases[] = {
      {"{\"tokenizer_class\":\"PreTrainedTokenizerFast\"}", 20916, 20917},
      {"{\"tokenizer_class\":\"CohereTokenizerFast\",\"bos_token\":\"<s>\",\"eos_token\":\"</s>\"}", 20916,
       UINT32_MAX},
      {"{\"tokenizer_class\":\"CohereTokenizerFast\",\"bos_token\":\"<s>\",\"eos_token\":\"</s>\","
       "\"add_bos_token\":false,\"add_eos_token\":true}",
       UINT32_MAX, 20917},
      {"{\"tokenizer_class\":\"GPTNeoXTokenizerFast\",\"bos_token\":\"<s>\",\"eos_token\":\"</s>\"}", UINT32_MAX,
       UINT32_MAX},
      {"{\"tokenizer_class\":\"LlamaTokenizerFast\",\"bos_token\":\"<s>\",\"eos_token\":\"</s>\"}", 20916,
       UINT32_MAX},
      /* no bos_token: the class's own default, <s> */
      {"{\"tokenizer_class\":\"LlamaTokenizerFast\",\"add_eos_token\":true}", 20916, 20917},
      /* a slow-only class whose name merely starts like one: tokenizer.json's stays */
      {"{\"tokenizer_class\":\"GPTNeoXJapaneseTokenizer\"}", 20916, 20917},
  };
  size_t len;
  char *json = tu_read_file("data/hf/tiny/bl/tokenizer.json", &len);
  const char *dir = tu_tempdir();
  tu_write(dir, "tokenizer.json", json);
  free(json);
  tok_scratch *s = tok_scratch_new(NULL);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    tu_write(dir, "tokenizer_config.json", cases[i].config);
    tok_tokenizer_source src = {"x", dir};
    tok_load_opts opts = {.encodings = "none", .tokenizers = &src, .n_tokenizers = 1};
    tok_registry *reg = NULL;
    tok_error err;
    ck_assert_msg(tok_registry_load(&opts, &reg, &err) == TOK_OK, "case %zu: %s", i, err.detail);
    const tok_encoding *enc = tok_registry_at(reg, 0);
    tok_encode_opts eo = {.add_special_tokens = true};
    tok_encode_result r, plain;
    ck_assert_int_eq(tok_encode(enc, s, "Hello World", 11, NULL, &plain, &err), TOK_OK);
    size_t body = plain.len;
    ck_assert_uint_ge(body, 2);
    ck_assert_int_eq(tok_encode(enc, s, "Hello World", 11, &eo, &r, &err), TOK_OK);
    size_t want = body + (cases[i].first != UINT32_MAX) + (cases[i].last != UINT32_MAX);
    ck_assert_msg(r.len == want, "case %zu: %zu ids, want %zu", i, r.len, want);
    if (cases[i].first != UINT32_MAX) ck_assert_uint_eq(r.ids[0], cases[i].first);
    if (cases[i].last != UINT32_MAX) ck_assert_uint_eq(r.ids[r.len - 1], cases[i].last);
    ck_assert_msg(r.ids[0] != 20916 || cases[i].first == 20916, "case %zu: an unwanted BOS", i);
    ck_assert_msg(r.ids[r.len - 1] != 20917 || cases[i].last == 20917, "case %zu: an unwanted EOS", i);
    tok_registry_free(reg);
  }
  tok_scratch_free(s);
}
END_TEST

/* Random text over the character classes normalization cares about: Hangul jamo (which
 * compose three at a time), combining marks, compatibility characters, case, spaces. */
static size_t random_text(uint32_t *x, char *text, size_t cap)
{
  static const uint32_t ranges[][2] = {{0x1100, 0x1112}, {0x1161, 0x1175}, {0x11a8, 0x11c2},
                                       {0x300, 0x36f},   {0x41, 0x5a},     {0x61, 0x7a},
                                       {0xc0, 0x24f},    {0x1e00, 0x1eff}, {0xff01, 0xff5e},
                                       {0x2160, 0x2188}, {0x20, 0x20},     {0x9, 0xd},
                                       {0xac00, 0xd7a3}, {0x3300, 0x33ff}, {0x1f1e6, 0x1f1ff},
                                       {0x130, 0x131}};
  size_t len = 0;
  while (len + 4 < cap) {
    *x ^= *x << 13, *x ^= *x >> 17, *x ^= *x << 5;
    const uint32_t *r = ranges[*x % 16];
    uint32_t c = r[0] + (*x >> 8) % (r[1] - r[0] + 1);
    len += tu_utf8_put(text + len, c);
    if ((*x & 127) == 0) break;
  }
  return len;
}

/* Protects: asking for offsets never changes the ids (the offsets path normalizes chunk by
 * chunk to keep alignments), and offsets are ordered ranges inside the text. */
START_TEST(test_hf_offsets_same_ids)
{
  const char *models[] = {"tiny/sp", "tiny/bl", "tiny/ws", "qwen3", "llama2", "gemma3", "llama3_1"};
  uint32_t x = 31337;
  tok_scratch *s = tok_scratch_new(NULL);
  char text[2048];
  for (size_t m = 0; m < sizeof models / sizeof models[0]; m++) {
    const tok_encoding *enc = tu_hf_encoding(models[m]);
    if (!enc) continue; /* the open models are optional here; the golden tests insist */
    for (int iter = 0; iter < 300; iter++) {
      size_t len = random_text(&x, text, sizeof text);
      tok_encode_result r;
      tok_error err;
      tok_encode_opts plain = {0}, with = {.want_offsets = true};
      ck_assert_int_eq(tok_encode(enc, s, text, len, &plain, &r, &err), TOK_OK);
      size_t n = r.len;
      uint32_t *ids = malloc((n + 1) * sizeof *ids);
      memcpy(ids, r.ids, n * sizeof *ids);
      ck_assert_int_eq(tok_encode(enc, s, text, len, &with, &r, &err), TOK_OK);
      compare_ids(models[m], r.ids, r.len, ids, n);
      for (size_t k = 0; k < r.len; k++) {
        ck_assert_uint_le(r.offsets[2 * k], r.offsets[2 * k + 1]);
        ck_assert_uint_le(r.offsets[2 * k + 1], len);
        if (k) ck_assert_uint_le(r.offsets[2 * k - 2], r.offsets[2 * k]);
      }
      free(ids);
    }
  }
  tok_scratch_free(s);
}
END_TEST

Suite *hf_suite(void)
{
  TCase *tc;
  Suite *s = tu_suite("hf", "models", 300, &tc);
  tcase_add_loop_test(tc, test_hf_golden, 0, TU_N_HF_MODELS);
  tcase_add_loop_test(tc, test_hf_added_tokens, 0, TU_N_HF_MODELS);
  tcase_add_loop_test(tc, test_hf_decode, 0, TU_N_HF_MODELS);
  tcase_add_loop_test(tc, test_hf_token_strings, 0, TU_N_HF_MODELS);
  tcase_add_test(tc, test_hf_config);
  TCase *files = tcase_create("files");
  tcase_add_test(files, test_hf_tiny);
  tcase_add_test(files, test_hf_piece_cache_partial);
  tcase_add_test(files, test_hf_unsupported);
  tcase_add_test(files, test_hf_config_post_processor);
  tcase_add_test(files, test_hf_malformed);
  tcase_add_test(files, test_hf_offsets_same_ids);
  suite_add_tcase(s, files);
  return s;
}
