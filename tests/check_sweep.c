/*
 * check_sweep.c — every code point, against the references: for each chunk of 512 code
 * points of planes 0-3 and 14, a text that puts each between letters, digits, spaces and
 * punctuation (so a piece boundary that moves changes the ids) must encode to the ids the
 * reference gave — npm tiktoken for the OpenAI encodings, npm tokenizers for the open
 * models — compared by the SHA-256 recorded in tests/data/unicode/sweep.txt
 * (tests/tools/gen_unicode_golden.mjs). This is what pins the Unicode version.
 */
#include "core/internal.h"
#include "testutil.h"

#define CHUNK 512

static size_t put_utf8(uint32_t c, char *o)
{
  if (c < 0x80) return o[0] = (char)c, 1;
  if (c < 0x800) return o[0] = (char)(0xC0 | c >> 6), o[1] = (char)(0x80 | (c & 0x3F)), 2;
  if (c < 0x10000)
    return o[0] = (char)(0xE0 | c >> 12), o[1] = (char)(0x80 | (c >> 6 & 0x3F)), o[2] = (char)(0x80 | (c & 0x3F)), 3;
  return o[0] = (char)(0xF0 | c >> 18), o[1] = (char)(0x80 | (c >> 12 & 0x3F)), o[2] = (char)(0x80 | (c >> 6 & 0x3F)),
         o[3] = (char)(0x80 | (c & 0x3F)), 4;
}

/* The chunk's text, as gen_unicode_golden.mjs builds it: x c X c %s c 123 c ' a' c 's c c . LF */
static size_t chunk_text(uint32_t start, char *out)
{
  size_t o = 0;
  for (uint32_t c = start; c < start + CHUNK; c++) {
    if (c >= 0xD800 && c <= 0xDFFF) continue;
    char s[4];
    size_t n = put_utf8(c, s);
    static const char *const parts[] = {"x", "X", "%s", "123", " a", "'s", "", ".\n"};
    for (int k = 0; k < 8; k++) {
      size_t pl = strlen(parts[k]);
      memcpy(out + o, parts[k], pl), o += pl;
      if (k < 7) memcpy(out + o, s, n), o += n;
    }
  }
  return o;
}

/* Protects: zero differing ids against the references over every code point. */
START_TEST(test_every_code_point)
{
  size_t len;
  char *golden = tu_read_file("data/unicode/sweep.txt", &len);
  char *text = malloc((size_t)CHUNK * 48); /* at most 13 + 7 x 4 bytes a line */
  tok_scratch *s = tok_scratch_new(NULL);
  char name[64] = "", last[64] = "";
  const tok_encoding *enc = NULL;
  size_t chunks = 0, bad = 0, skipped = 0;
  char report[2048] = "";
  for (char *line = strtok(golden, "\n"); line; line = strtok(NULL, "\n")) {
    if (line[0] == '#') continue;
    unsigned start;
    char want[17];
    ck_assert_int_eq(sscanf(line, "%63s %x %16s", name, &start, want), 3);
    if (strcmp(name, last)) {
      strcpy(last, name);
      enc = strstr(name, "_base") ? tu_encoding(name) : tu_hf_model_or_skip(name);
    }
    if (!enc) {
      skipped++;
      continue;
    }
    size_t n = chunk_text(start, text);
    tok_encode_result r;
    tok_error err;
    ck_assert_int_eq(tok_encode(enc, s, text, n, NULL, &r, &err), TOK_OK);
    uint8_t *le = malloc(r.len * 4 + 1);
    for (size_t i = 0; i < r.len; i++)
      le[4 * i] = (uint8_t)r.ids[i], le[4 * i + 1] = (uint8_t)(r.ids[i] >> 8),
      le[4 * i + 2] = (uint8_t)(r.ids[i] >> 16), le[4 * i + 3] = (uint8_t)(r.ids[i] >> 24);
    char hex[65];
    tok__sha256_hex(le, r.len * 4, hex);
    free(le);
    chunks++;
    if (strncmp(hex, want, 16) != 0) {
      bad++;
      size_t o = strlen(report);
      if (o < sizeof report - 40) snprintf(report + o, sizeof report - o, " %s:U+%04X", name, start);
    }
  }
  tok_scratch_free(s);
  free(text);
  free(golden);
  ck_assert_uint_gt(chunks, 0);
  ck_assert_msg(bad == 0, "%zu of %zu chunks differ from the reference (code points from):%s", bad, chunks, report);
  if (skipped) fprintf(stderr, "check_sweep: %zu chunks of models not fetched skipped\n", skipped);
}
END_TEST

#define SWEEP_TESTS(T, L) T(test_every_code_point)
TU_SUITE(sweep, "core", 300, SWEEP_TESTS)
