/* inventory.c: loads a small stock list, prints a report and a histogram.
 * Lab 02: valgrind finds leaks of all four kinds here. Fix every one of them
 * without changing what the program prints (expected-output.txt). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct item {
    char *name;
    int qty;
    struct item *next;
};

static const char *const STOCK[] = {"bolts:120", "nuts:75", "washers:310", "screws:42", "rivets:8"};
#define NSTOCK (sizeof STOCK / sizeof STOCK[0])
#define NBUCKETS 8
#define BUCKET_WIDTH 50

/* The banner of the last report, kept so it can be printed again. */
static char *last_banner;

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

static struct item *load(void)
{
    struct item *head = NULL;
    struct item **tail = &head;
    for (size_t i = 0; i < NSTOCK; i++) {
        *tail = parse(STOCK[i]);
        tail = &(*tail)->next;
    }
    return head;
}

static void free_list(struct item *list)
{
    while (list != NULL) {
        struct item *next = list->next;
        free(list);
        list = next;
    }
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
        free(line);
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
    free(buckets);
}

int main(void)
{
    struct item *list = load();
    report(list);
    histogram(list);
    printf("upper buckets start at %d\n", (NBUCKETS / 2) * BUCKET_WIDTH);
    free_list(list);
    free(last_banner);
    return 0;
}
