// error: unknown bad free `twice`
free(p); //~ BADFREE twice
