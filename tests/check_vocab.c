/* check_vocab.c — rank files, manifests, custom encodings, checksums. */
#include "core/internal.h"
#include "testutil.h"

static void b64(const uint8_t *in, size_t len, char *out)
{
  tok_buf buf = {0};
  ck_assert_int_eq(tok_base64_encode(in, len, &buf), TOK_OK);
  memcpy(out, buf.data, buf.len);
  out[buf.len] = '\0';
  tok_buf_free(&buf);
}

/* A tiny vocabulary: 256 bytes, then "ab" 256 and "abc" 257, with `extra` appended. */
static const char *tiny_dir(const char *manifest_extra, const char *ranks_extra)
{
  const char *dir = tu_tempdir();
  char *ranks = malloc(256 * 16 + 256);
  size_t len = 0;
  for (int b = 0; b < 256; b++) {
    uint8_t byte = (uint8_t)b;
    char enc[8];
    b64(&byte, 1, enc);
    len += (size_t)sprintf(ranks + len, "%s %d\n", enc, b);
  }
  len += (size_t)sprintf(ranks + len, "YWI= 256\nYWJj 257\n%s", ranks_extra);
  tu_write(dir, "tiny.tiktoken", ranks);
  free(ranks);
  char manifest[1024];
  snprintf(manifest, sizeof manifest,
           "# test\nname tiny\nalias tiny-alias\nranks tiny.tiktoken\npattern \\S+|\\s+\n"
           "special <|end|> 300\n%s",
           manifest_extra);
  tu_write(dir, "tiny.manifest", manifest);
  return dir;
}

/* Protects: a custom encoding from a directory loads and encodes with its own rules. */
START_TEST(test_custom_encoding)
{
  const char *dir = tiny_dir("", "");
  tok_registry *reg;
  tok_error err;
  ck_assert_msg(tok_registry_load(&(tok_load_opts){.vocab_dir = dir}, &reg, &err) == TOK_OK, "%s", err.detail);
  const tok_encoding *enc = tok_registry_find(reg, "tiny-alias", 10);
  ck_assert(enc != NULL);
  const tok_encoding_info *info = tok_encoding_get_info(enc);
  ck_assert_str_eq(info->name, "tiny");
  ck_assert_uint_eq(info->n_vocab, 301);
  ck_assert(!info->embedded);
  tok_scratch *s = tok_scratch_new(NULL);
  tok_special_set all;
  tok_special_set_all(enc, &all);
  tok_encode_opts opts = {.allowed_special = &all};
  tok_encode_result r;
  ck_assert_int_eq(tok_encode(enc, s, "abc ab<|end|>x", 14, &opts, &r, &err), TOK_OK);
  uint32_t want[] = {257, 32, 256, 300, 'x'};
  ck_assert_uint_eq(r.len, 5);
  for (size_t i = 0; i < 5; i++) ck_assert_uint_eq(r.ids[i], want[i]);
  tok_scratch_free(s);
  tok_registry_free(reg);
}
END_TEST

static void expect_load_error(const char *dir, tok_err code, const char *needle)
{
  tok_registry *reg = NULL;
  tok_error err;
  tu_assert_refused(tok_registry_load(&(tok_load_opts){.vocab_dir = dir}, &reg, &err), reg, &err, code, needle);
}

/* Protects: malformed rank files are refused with the file name and line number. */
START_TEST(test_bad_rank_files)
{
  expect_load_error(tiny_dir("", "not-base64! 258\n"), TOK_EVOCAB, "tiny.tiktoken:259");
  expect_load_error(tiny_dir("", "YWJj 258\n"), TOK_EVOCAB, "same token bytes");
  expect_load_error(tiny_dir("", "YWJjZA== 257\n"), TOK_EVOCAB, "257 appears twice");
  expect_load_error(tiny_dir("", "YWJjZA== x\n"), TOK_EVOCAB, "tiny.tiktoken:259");
  expect_load_error(tiny_dir("", "YWJjZA==\n"), TOK_EVOCAB, "expected");
  expect_load_error(tiny_dir("", "YWJjZA== 99999999999\n"), TOK_EVOCAB, "below");
}
END_TEST

/* Protects: manifest mistakes are refused with the line, and cross-checks hold. */
START_TEST(test_bad_manifests)
{
  expect_load_error(tiny_dir("colour blue\n", ""), TOK_EMANIFEST, "unknown key \"colour\"");
  expect_load_error(tiny_dir("special <|x|> 97\n", ""), TOK_EMANIFEST, "also a rank");
  expect_load_error(tiny_dir("n_vocab 5\n", ""), TOK_EMANIFEST, "n_vocab 5");
  expect_load_error(tiny_dir("sha256 0000000000000000000000000000000000000000000000000000000000000000\n", ""),
                    TOK_ECHECKSUM, "expects");
  expect_load_error(tiny_dir("pattern again\n", ""), TOK_EMANIFEST, "pattern given twice");
  const char *dir = tu_tempdir();
  tu_write(dir, "x.manifest", "name x\nranks x.tiktoken\npattern (unclosed\n");
  tu_write(dir, "x.tiktoken", "YQ== 0\n");
  expect_load_error(dir, TOK_EPATTERN, "does not compile");
  dir = tu_tempdir();
  tu_write(dir, "y.manifest", "name y\nranks missing.tiktoken\npattern .\n");
  expect_load_error(dir, TOK_EIO, "missing.tiktoken");
}
END_TEST

/* Protects: asking for an encoding that is not there names it. */
START_TEST(test_unknown_encoding)
{
  tok_registry *reg = NULL;
  tok_error err;
  ck_assert_int_eq(tok_registry_load(&(tok_load_opts){.encodings = "cl100k_base,nope"}, &reg, &err), TOK_EUNKNOWN_ENCODING);
  ck_assert(strstr(err.detail, "\"nope\"") != NULL);
  ck_assert_int_eq(tok_registry_load(&(tok_load_opts){.encodings = "gpt2"}, &reg, &err), TOK_OK);
  ck_assert_uint_eq(tok_registry_count(reg), 1);
  ck_assert_str_eq(tok_encoding_get_info(tok_registry_at(reg, 0))->name, "r50k_base");
  tok_registry_free(reg);
}
END_TEST

/* Protects: vocab/'s rank files are byte-identical to OpenAI's published files, and the
 * built-in encodings (their models found in the image by this sum) name those files. */
START_TEST(test_embedded_checksums)
{
  char sum[65];
  tok__sha256_hex("abc", 3, sum);
  ck_assert_str_eq(sum, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  tok__sha256_hex("", 0, sum);
  ck_assert_str_eq(sum, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  const char *files[] = {"r50k_base.tiktoken", "p50k_base.tiktoken", "cl100k_base.tiktoken",
                         "o200k_base.tiktoken"};
  const char *want[] = {"306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930",
                        "94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069",
                        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
                        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"};
  for (int i = 0; i < 4; i++) {
    char path[256];
    snprintf(path, sizeof path, "../vocab/%s", files[i]);
    size_t len;
    char *text = tu_read_file(path, &len);
    tok__sha256_hex(text, len, sum);
    free(text);
    ck_assert_str_eq(sum, want[i]);
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int)(strchr(files[i], '.') - files[i]), files[i]);
    ck_assert_str_eq(tu_encoding(name)->sha256, want[i]);
  }
}
END_TEST

/* Protects: the model table resolves exact names and prefixes like tiktoken. */
START_TEST(test_models)
{
  ck_assert_str_eq(tok_model_encoding("gpt-4o", 6), "o200k_base");
  ck_assert_str_eq(tok_model_encoding("gpt-4-0613", 10), "cl100k_base");
  ck_assert_str_eq(tok_model_encoding("gpt-4o-2099-01-01", 17), "o200k_base");
  ck_assert_str_eq(tok_model_encoding("gpt-3.5-turbo-9999", 18), "cl100k_base");
  ck_assert_str_eq(tok_model_encoding("text-davinci-003", 16), "p50k_base");
  ck_assert_str_eq(tok_model_encoding("gpt2", 4), "r50k_base");
  ck_assert_ptr_null(tok_model_encoding("llama-3", 7));
}
END_TEST

/* Protects: every token is found whole by its own bytes, the long ones (which meet the
 * first-two-bytes length filter, and tokens of 255 bytes or more) included. */
START_TEST(test_every_token_whole)
{
  static const char *const names[] = {"r50k_base", "cl100k_base", "o200k_base"};
  for (size_t k = 0; k < 3; k++) {
    const tok__model *m = tu_encoding(names[k])->model;
    size_t longer = 0;
    for (uint32_t id = 0; id < m->id_end; id++) {
      uint32_t len = m->off[id + 1] - m->off[id];
      if (len == 0 || (m->literal && tok__bit(m->literal, id))) continue;
      longer += len > 16;
      ck_assert_msg(tok__bpe_whole(m, m->bytes + m->off[id], len) == id, "%s: token %u", names[k], id);
    }
    ck_assert_uint_gt(longer, 50);
  }
}
END_TEST

/* Protects: the backtracker's outlier scan, which strides over runs of one byte, still
 * finds an outlier inside or right after a run: "aaab" (merged before its part "aa") after
 * "c" and a run of a, and "xxxxy" (before "xx" and "xxxx"), whose first four bytes are a
 * run themselves. Every such piece encodes as the heap merger does, and the outliers are
 * in the results. */
START_TEST(test_outlier_after_run)
{
  const char *dir = tiny_dir("", "Y2E= 258\nYWFhYg== 259\nYWE= 260\neHh4eHk= 261\neHg= 262\neHh4eA== 263\n");
  tok_registry *reg;
  tok_error err;
  ck_assert_msg(tok_registry_load(&(tok_load_opts){.vocab_dir = dir}, &reg, &err) == TOK_OK, "%s", err.detail);
  const tok__model *m = tok_registry_find(reg, "tiny", 4)->model;
  ck_assert(tok__bt_get(m, true) != NULL);
  tok_scratch *s = tok_scratch_new(NULL);
  static const char *const forms[][3] = {{"c", "a", "b"}, {"", "a", "b"}, {"", "x", "y"}, {"c", "x", "y"}};
  uint8_t piece[128];
  uint32_t a[128], b[128];
  size_t outliers[2] = {0, 0};
  for (size_t f = 0; f < 4; f++)
    for (size_t run = 1; run < 48; run++)
      for (size_t after = 0; after < 10; after++) {
        size_t n = strlen(forms[f][0]), na, nb;
        memcpy(piece, forms[f][0], n);
        memset(piece + n, forms[f][1][0], run), n += run;
        piece[n++] = (uint8_t)forms[f][2][0];
        memset(piece + n, forms[f][1][0], after), n += after;
        ck_assert_int_eq(tok__bpe_encode_piece_heap(m, s, piece, n, a, &na), TOK_OK);
        ck_assert_int_eq(tok__bpe_merge_only(m, s, piece, n, b, &nb), TOK_OK);
        ck_assert_msg(na == nb && !memcmp(a, b, na * sizeof *a), "form %zu, run %zu, %zu after: differs", f, run,
                      after);
        for (size_t i = 0; i < na; i++) outliers[0] += a[i] == 259, outliers[1] += a[i] == 261;
      }
  ck_assert_uint_gt(outliers[0], 100);
  ck_assert_uint_gt(outliers[1], 100);
  tok_scratch_free(s);
  tok_registry_free(reg);
}
END_TEST

#define VOCAB_TESTS(T, L) T(test_custom_encoding) T(test_bad_rank_files) T(test_bad_manifests) \
  T(test_unknown_encoding) T(test_embedded_checksums) T(test_models) T(test_every_token_whole) \
  T(test_outlier_after_run)
TU_SUITE(vocab, "core", 60, VOCAB_TESTS)
