/*
 * replay.c — runs a fuzz target over every file of the given directories, so the committed
 * corpus (tests/data/fuzz/) is a regression test of the ordinary `make test`, with or
 * without sanitizers and without libFuzzer.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int main(int argc, char **argv)
{
  size_t files = 0;
  for (int a = 1; a < argc; a++) {
    DIR *d = opendir(argv[a]);
    if (!d) {
      perror(argv[a]);
      return 1;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
      if (de->d_name[0] == '.') continue;
      char path[4096];
      snprintf(path, sizeof path, "%s/%s", argv[a], de->d_name);
      FILE *f = fopen(path, "rb");
      if (!f) continue;
      fseek(f, 0, SEEK_END);
      long n = ftell(f);
      fseek(f, 0, SEEK_SET);
      unsigned char *buf = malloc((size_t)n + 1);
      if (fread(buf, 1, (size_t)n, f) != (size_t)n) n = 0;
      fclose(f);
      LLVMFuzzerTestOneInput(buf, (size_t)n);
      free(buf);
      files++;
    }
    closedir(d);
  }
  printf("replayed %zu inputs: 0 crashes\n", files);
  return files ? 0 : 1;
}
