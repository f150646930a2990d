/* inventory.c: loads a stock list, prints a report and a histogram.
 *     cc -g inventory.c -o inventory && ./inventory stock.txt
 * The stock list has one `name:quantity` line per item.
 * Lab 02: valgrind finds leaks of all four kinds here. Fix every one of them
 * without changing what the program prints (for stock.txt:
 * expected-output.txt). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct item {
    char *name;
    int qty;
    struct item *next;
};

#define NBUCKETS 8
#define BUCKET_WIDTH 50

/* The banner of the last report, kept so it can be printed again. */
static char *last_banner;
/* The busiest buckets, kept for a summary; points into the histogram. */
static int *upper_buckets;

static struct item *parse(const char *line)
{
    struct item *it = malloc(sizeof *it);
    const char *colon = strchr(line, ':');
    if (it == NULL || colon == NULL)
        exit(1);
    it->name = strndup(line, (size_t)(colon - line));
    it->qty = atoi(colon + 1);
    it->next = NULL;
    return it;
}

static struct item *load(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        perror(path);
        exit(1);
    }
    struct item *head = NULL;
    struct item **tail = &head;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) != -1) {
        if (line[0] == '\n')
            continue;
        *tail = parse(line);
        tail = &(*tail)->next;
    }
    free(line);
    fclose(f);
    return head;
}

static char *banner(const char *title)
{
    char *b = malloc(64);
    if (b == NULL)
        exit(1);
    snprintf(b, 64, "== %s ==", title);
    return b;
}

static void report(const struct item *list)
{
    char *b = banner("stock report");
    puts(b);
    last_banner = b;
    int total = 0;
    for (const struct item *it = list; it != NULL; it = it->next) {
        char *line;
        if (asprintf(&line, "%-8s %4d", it->name, it->qty) < 0)
            exit(1);
        puts(line);
        total += it->qty;
    }
    printf("%-8s %4d\n", "total", total);
}

static void histogram(const struct item *list)
{
    int *buckets = calloc(NBUCKETS, sizeof *buckets);
    if (buckets == NULL)
        exit(1);
    for (const struct item *it = list; it != NULL; it = it->next) {
        int b = it->qty / BUCKET_WIDTH;
        buckets[b < NBUCKETS ? b : NBUCKETS - 1]++;
    }
    for (int b = 0; b < NBUCKETS; b++)
        if (buckets[b] != 0)
            printf("%3d-%-3d  %d\n", b * BUCKET_WIDTH, b * BUCKET_WIDTH + BUCKET_WIDTH - 1, buckets[b]);
    upper_buckets = buckets + NBUCKETS / 2;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s STOCK-FILE\n", argv[0]);
        return 2;
    }
    struct item *list = load(argv[1]);
    report(list);
    histogram(list);
    printf("upper buckets start at %d\n", (NBUCKETS / 2) * BUCKET_WIDTH);
    /* Done with the list. */
    list = NULL;
    return 0;
}
