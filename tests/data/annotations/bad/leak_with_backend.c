// error: ground truth for every backend
int *p = malloc(4); //~[hook] LEAK definite size=4
