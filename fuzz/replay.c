/*
 * Replay driver for fuzz targets: feeds every file of a corpus folder to
 * LLVMFuzzerTestOneInput, so the corpus runs in `make test` without clang's
 * libFuzzer. Exits non-zero if the folder is missing or empty, so a lost
 * corpus cannot pass silently.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
replay_file(const char *path)
{
	FILE *f;
	uint8_t *buf = NULL;
	long len;
	int r = -1;

	if ((f = fopen(path, "rb")) == NULL)
		return -1;
	if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0)
		goto out;
	if ((buf = malloc(len > 0 ? (size_t)len : 1)) == NULL)
		goto out;
	if (len > 0 && fread(buf, 1, (size_t)len, f) != (size_t)len)
		goto out;
	LLVMFuzzerTestOneInput(buf, (size_t)len);
	r = 0;
out:
	free(buf);
	fclose(f);
	return r;
}

int
main(int argc, char **argv)
{
	DIR *d;
	struct dirent *de;
	char path[4096];
	int n = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
		return 2;
	}
	if ((d = opendir(argv[1])) == NULL) {
		fprintf(stderr, "replay: cannot open corpus %s\n", argv[1]);
		return 1;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", argv[1], de->d_name);
		if (replay_file(path) != 0) {
			fprintf(stderr, "replay: cannot read %s\n", path);
			closedir(d);
			return 1;
		}
		n++;
	}
	closedir(d);
	if (n == 0) {
		fprintf(stderr, "replay: corpus %s is empty\n", argv[1]);
		return 1;
	}
	printf("replayed %d inputs from %s\n", n, argv[1]);
	return 0;
}
