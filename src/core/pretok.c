/*
 * pretok.c — splits text into pieces with the encoding's regex (PCRE2, UTF + UCP, JIT).
 *
 * The compiled pattern lives in the encoding and is shared read-only; match data, match
 * context and JIT stack live in the caller's tok_scratch, so threads never share mutable
 * regex state. The subject handed to PCRE2 is exactly the slice between special tokens,
 * so `$` and `\s+(?!\S)` see the slice end as tiktoken's regex does.
 *
 * Iteration follows Rust regex's find_iter (what tiktoken uses): the next match is the
 * leftmost one at or after the previous end; text no alternative matches is skipped; an
 * empty match yields no piece and the search resumes one character later. The shipped
 * patterns match every character and never match empty, so these rules matter only for
 * custom patterns.
 */
#include "internal.h"

tok_err tok__pretok_compile(tok_encoding *enc, tok_error *err)
{
  int code;
  PCRE2_SIZE offset;
  pcre2_code *re = pcre2_compile((PCRE2_SPTR)enc->manifest.pattern, PCRE2_ZERO_TERMINATED,
                                 PCRE2_UTF | PCRE2_UCP | PCRE2_NEVER_BACKSLASH_C, &code,
                                 &offset, NULL);
  if (!re) {
    PCRE2_UCHAR msg[160];
    pcre2_get_error_message(code, msg, sizeof msg);
    return tok__fail(err, TOK_EPATTERN, offset, TOK_NO_POS,
                     "encoding %s: pattern does not compile at offset %zu: %s",
                     enc->manifest.name, (size_t)offset, (const char *)msg);
  }
  /* Without JIT (some platforms) pcre2_match still works, just slower. */
  enc->re_jit = pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) == 0;
  enc->re = re;
  return TOK_OK;
}

tok_err tok__pretok_next(const tok_encoding *enc, tok_scratch *s, const uint8_t *subject,
                         size_t len, size_t pos, size_t *start, size_t *end, tok_error *err)
{
  for (;;) {
    if (pos >= len) {
      *start = *end = len;
      return TOK_OK;
    }
    /* The text was validated once up front, so PCRE2 need not re-check it per call. */
    int rc = enc->re_jit ? pcre2_jit_match(enc->re, subject, len, pos, PCRE2_NO_UTF_CHECK,
                                           s->md, s->mctx)
                         : pcre2_match(enc->re, subject, len, pos, PCRE2_NO_UTF_CHECK, s->md,
                                       s->mctx);
    if (rc == PCRE2_ERROR_NOMATCH) {
      *start = *end = len;
      return TOK_OK;
    }
    if (rc < 0) {
      PCRE2_UCHAR msg[120];
      pcre2_get_error_message(rc, msg, sizeof msg);
      return tok__fail(err, TOK_EREGEX, pos, TOK_NO_POS,
                       "pre-tokenizer gave up at byte %zu: %s", pos, (const char *)msg);
    }
    /* rc == 0 only means the ovector had no room for capture groups; [0], [1] are set */
    const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(s->md);
    if (ov[1] > ov[0]) {
      *start = ov[0];
      *end = ov[1];
      return TOK_OK;
    }
    /* empty match: skip one character (lead byte plus continuation bytes) */
    pos = ov[0] + 1;
    while (pos < len && (subject[pos] & 0xC0) == 0x80) pos++;
  }
}
