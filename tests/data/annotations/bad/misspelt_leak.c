// error: expected LEAK, NOLEAK, BADFREE, MISS: or FALSE:, found `LEEK`
int *p = malloc(4); //~ LEEK definite size=4
