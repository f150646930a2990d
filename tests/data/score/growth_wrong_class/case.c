//@ title: a scoring case: growth where the annotation does not say
void f(void) {
    p = malloc(64); //~ LEAK definite size=64 count=10
    q = mmap(0); //~ LEAK definite size=65536 count=3 region=shared-anon
}
