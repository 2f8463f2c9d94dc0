/*
 * unicode.c — the character classes the pipeline stages need, and GPT-2's byte-level
 * alphabet.
 *
 * Hugging Face decides these with Rust's char methods and regex classes; here they are
 * derived from general categories (utf8proc, Unicode 15) plus the few explicit lists the
 * Rust definitions add (White_Space, Join_Control, the Other_Alphabetic symbols). The
 * pre-tokenizer's regexes do not use these: PCRE2 classifies their \p{..} itself.
 */
#include <utf8proc.h>

#include "core/internal.h"

uint32_t tok__utf8_next(const uint8_t *s, size_t len, size_t *i)
{
  size_t k = *i;
  uint32_t c = s[k];
  if (c < 0x80 || k + 1 >= len) {
    *i = k + 1;
    return c;
  }
  if (c < 0xE0) {
    *i = k + 2;
    return (c & 0x1F) << 6 | (s[k + 1] & 0x3F);
  }
  if (c < 0xF0 || k + 3 > len) {
    *i = k + 3;
    return (c & 0x0F) << 12 | (uint32_t)(s[k + 1] & 0x3F) << 6 | (s[k + 2] & 0x3F);
  }
  *i = k + 4;
  return (c & 0x07) << 18 | (uint32_t)(s[k + 1] & 0x3F) << 12 | (uint32_t)(s[k + 2] & 0x3F) << 6 |
         (s[k + 3] & 0x3F);
}

bool tok__is_whitespace(uint32_t c)
{
  /* the White_Space property (what Rust's char::is_whitespace tests) */
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

bool tok__is_word(uint32_t c)
{
  if (c < 0x80)
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  if (c == 0x200C || c == 0x200D) return true; /* Join_Control */
  /* symbols that are Other_Alphabetic (circled and squared letters) */
  if ((c >= 0x24B6 && c <= 0x24E9) || (c >= 0x1F130 && c <= 0x1F149) ||
      (c >= 0x1F150 && c <= 0x1F169) || (c >= 0x1F170 && c <= 0x1F189))
    return true;
  switch (utf8proc_category((utf8proc_int32_t)c)) {
  case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
  case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_NL:
  case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
  case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_PC:
    return true;
  default:
    return false;
  }
}

bool tok__is_punctuation(uint32_t c)
{
  if (c < 0x80) return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) ||
                       (c >= 0x5B && c <= 0x60) || (c >= 0x7B && c <= 0x7E);
  switch (utf8proc_category((utf8proc_int32_t)c)) {
  case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD: case UTF8PROC_CATEGORY_PS:
  case UTF8PROC_CATEGORY_PE: case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF:
  case UTF8PROC_CATEGORY_PO:
    return true;
  default:
    return false;
  }
}

bool tok__is_numeric(uint32_t c)
{
  if (c < 0x80) return c >= '0' && c <= '9';
  utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)c);
  return cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_NO;
}

bool tok__is_mark(uint32_t c)
{
  return c >= 0x300 && utf8proc_category((utf8proc_int32_t)c) == UTF8PROC_CATEGORY_MN;
}

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves; the other 68
 * (0x00-0x20, 0x7F-0xA0, 0xAD) are spelled with U+0100.. in byte order. */
uint32_t tok__byte_char(uint8_t b)
{
  if (b <= 0x20) return 256u + b;
  if (b >= 0x7F && b <= 0xA0) return 289u + (b - 0x7Fu);
  if (b == 0xAD) return 323;
  return b;
}

int tok__char_byte(uint32_t c)
{
  if (c < 256) return (c <= 0x20 || (c >= 0x7F && c <= 0xA0) || c == 0xAD) ? -1 : (int)c;
  if (c <= 288) return (int)(c - 256);
  if (c <= 322) return (int)(c - 289 + 0x7F);
  if (c == 323) return 0xAD;
  return -1;
}
