// error: unknown leak kind `lost`
int *p = malloc(4); //~ LEAK lost size=4
