/*
 * gen_bt_image.c — writes the backtracking encoder's tables of every built-in vocabulary
 * as one image (backtrack.c, "Images"), which bt_image.S embeds in libtok.
 *
 *   gen_bt_image OUT
 *
 * It links libtok with an empty image, so every table is built here from the embedded
 * vocabularies; a model the backtracker does not apply to is left out. The Makefile runs
 * it whenever the core or a vocabulary changes.
 */
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

int main(int argc, char **argv)
{
  if (argc != 2) {
    fprintf(stderr, "usage: gen_bt_image OUT\n");
    return 2;
  }
  tok_registry *reg;
  tok_error err;
  tok_load_opts opts = {0}; /* every built-in encoding */
  if (tok_registry_load(&opts, &reg, &err) != TOK_OK) {
    fprintf(stderr, "gen_bt_image: %s\n", err.detail);
    return 1;
  }
  FILE *out = fopen(argv[1], "wb");
  if (!out) {
    perror(argv[1]);
    return 1;
  }
  tok_err rc = TOK_OK;
  for (size_t i = 0; i < reg->n_models && rc == TOK_OK; i++) rc = tok__bt_image_write(reg->models[i], out);
  if (fclose(out) != 0) rc = TOK_EIO;
  tok_registry_free(reg);
  if (rc != TOK_OK) {
    fprintf(stderr, "gen_bt_image: cannot write %s\n", argv[1]);
    remove(argv[1]);
    return 1;
  }
  return 0;
}
