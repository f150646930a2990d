// error: ground truth for every backend
free(p); //~[hook] BADFREE double
