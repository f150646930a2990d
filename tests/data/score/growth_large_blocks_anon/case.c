//@ title: a scoring case: blocks of 128 KiB and more are mmapped by malloc
void f(void) {
    p = new int[102400]; //~ LEAK definite size=409600 count=10
}
