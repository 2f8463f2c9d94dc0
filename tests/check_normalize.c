/* check_normalize.c — the normalizer's shortcuts against utf8proc itself. */
#include <utf8proc.h>

#include "internal.h"
#include "testutil.h"

static size_t put(uint32_t c, uint8_t *out) { return (size_t)utf8proc_encode_char((utf8proc_int32_t)c, out); }

/* Protects: the characters the fast path copies instead of normalizing are exactly safe:
 * no form changes them, and none is the second character of any canonical composition in
 * utf8proc's data (which is what makes cutting the text before them exact). */
START_TEST(test_stable_characters)
{
  static const tok__norm_kind kinds[] = {TOK__NORM_NFC, TOK__NORM_NFD, TOK__NORM_NFKC, TOK__NORM_NFKD};
  static const utf8proc_option_t opts[] = {
      UTF8PROC_STABLE | UTF8PROC_COMPOSE, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE,
      UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT,
      UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT};
  /* every second character of a canonical composition that NFC performs */
  static uint8_t is_second[0x110000 / 8];
  for (uint32_t p = 0; p < 0x110000; p++) {
    if (p >= 0xD800 && p <= 0xDFFF) continue;
    utf8proc_int32_t d[8];
    utf8proc_ssize_t n = utf8proc_decompose_char((utf8proc_int32_t)p, d, 8, UTF8PROC_DECOMPOSE, NULL);
    if (n < 2) continue;
    utf8proc_int32_t pair[2] = {d[0], d[1]};
    /* a pair NFC recomposes into something shorter: its second character composes */
    uint8_t buf[16], *out;
    size_t len = put((uint32_t)pair[0], buf);
    len += put((uint32_t)pair[1], buf + len);
    utf8proc_map(buf, (utf8proc_ssize_t)len, &out, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (strlen((char *)out) < len) is_second[d[1] >> 3] |= (uint8_t)(1 << (d[1] & 7));
    free(out);
  }
  for (uint32_t c = 1; c < 0x110000; c++) { /* U+0000 is ASCII; strlen cannot see it */
    if (c >= 0xD800 && c <= 0xDFFF) continue;
    for (int k = 0; k < 4; k++) {
      if (!tok__nf_stable(c, kinds[k])) continue;
      uint8_t buf[8], *out;
      size_t len = put(c, buf);
      utf8proc_map(buf, (utf8proc_ssize_t)len, &out, opts[k]);
      ck_assert_msg(strlen((char *)out) == len && memcmp(out, buf, len) == 0,
                    "U+%04X is not stable under form %d", c, k);
      free(out);
      if (k == 0 || k == 2)
        ck_assert_msg(!(is_second[c >> 3] >> (c & 7) & 1), "U+%04X composes with what precedes it", c);
    }
  }
}
END_TEST

Suite *normalize_suite(void)
{
  Suite *s = suite_create("normalize");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_stable_characters);
  suite_add_tcase(s, tc);
  return s;
}
