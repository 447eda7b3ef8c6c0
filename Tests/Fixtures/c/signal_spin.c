// A program that spends most of its time inside a signal handler: SIGALRM from an interval
// timer interrupts `main_loop`, and `in_handler` spins for a while each time. Frame-pointer
// stacks then pass through the kernel's signal trampoline (__restore_rt).
//     signal_spin ROUNDS
#include <signal.h>
#include <stdlib.h>
#include <sys/time.h>

static volatile unsigned long sink;
static volatile int rounds_left;

__attribute__((noinline)) void in_handler(void) {
    for (unsigned long i = 0; i < 1000000; i++) sink += i * 7;
}

__attribute__((noinline)) void on_alarm(int sig) {
    (void)sig;
    in_handler();
    // The last round stops the timer: a signal pending when the handler returns is delivered
    // before the interrupted code runs again, so main_loop would never see the count reach 0.
    if (--rounds_left <= 0) {
        struct itimerval off = {{0, 0}, {0, 0}};
        setitimer(ITIMER_REAL, &off, 0);
    }
}

__attribute__((noinline)) void main_loop(void) {
    while (rounds_left > 0) sink += 1;
}

int main(int argc, char **argv) {
    rounds_left = argc > 1 ? atoi(argv[1]) : 100;
    struct sigaction sa = {0};
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, 0);
    struct itimerval t = {{0, 5000}, {0, 5000}};
    setitimer(ITIMER_REAL, &t, 0);
    main_loop();
    return 0;
}
