/*
 * encode.c — the smallest program on libtokd: encodes its argument (or stdin) with
 * cl100k_base, prints the ids, the count and the text decoded back.
 *
 *   cc encode.c $(pkg-config --cflags --libs tokd) -o encode && ./encode "hello world"
 *
 * One registry is loaded once and shared (read-only, any number of threads); each thread
 * that encodes owns a scratch. Every call returns a tok_err, and err says what and where.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tok.h>

int main(int argc, char **argv)
{
  static char input[1 << 20];
  size_t len = argc > 1 ? strlen(argv[1]) : fread(input, 1, sizeof input, stdin);
  const char *text = argc > 1 ? argv[1] : input;
  if (argc > 1 && len >= sizeof input) return 2;

  tok_registry *reg;
  tok_error err;
  tok_load_opts opts = {.encodings = "cl100k_base"}; /* the built-in copy: no files needed */
  if (tok_registry_load(&opts, &reg, &err) != TOK_OK) {
    fprintf(stderr, "load: %s\n", err.detail);
    return 1;
  }
  const tok_encoding *enc = tok_registry_find(reg, "cl100k_base", strlen("cl100k_base"));
  tok_scratch *scratch = tok_scratch_new(NULL);
  tok_encode_result res;
  tok_buf back = {0};
  int rc = 1;
  if (!scratch) goto done;
  if (tok_encode(enc, scratch, text, len, NULL, &res, &err) != TOK_OK) {
    fprintf(stderr, "encode: %s (byte %zu)\n", err.detail, err.pos);
    goto done;
  }
  for (size_t i = 0; i < res.len; i++) printf("%s%u", i ? " " : "", res.ids[i]);
  printf("\n%zu tokens\n", res.len);
  /* res.ids points into the scratch: decoding with the same scratch needs a copy */
  uint32_t *ids = malloc(res.len * sizeof *ids + 1);
  if (!ids) goto done;
  memcpy(ids, res.ids, res.len * sizeof *ids);
  if (tok_decode_bytes(enc, scratch, ids, res.len, NULL, &back, &err) != TOK_OK) {
    fprintf(stderr, "decode: %s\n", err.detail);
  } else {
    printf("%.*s\n", (int)back.len, back.data);
    rc = back.len == len && memcmp(back.data, text, len) == 0 ? 0 : 3;
  }
  free(ids);
done:
  tok_buf_free(&back);
  tok_scratch_free(scratch);
  tok_registry_free(reg);
  return rc;
}
