// The shim's signal state seen from two translation units, as a release build of sprof has it
// (each Swift source file its own object file, each with its own copies of csprof.h's static
// inline functions). Built with shim_signals_other.c and -I include (see
// SprofRecordingTests.SignalStateTests). Prints the signal the other unit's handler noted, as
// this unit reads it, then survives a SIGTERM after the other unit's restore because this unit
// asked to keep catching; prints "kept".
#include "csprof.h"
#include <stdio.h>

void other_route(void);
void other_restore(void);

int main(void) {
    csprof_install_signal_forwarding(0, -1);
    csprof_keep_catching_signals();
    other_route(); // the other unit's handler is the one installed from here on
    raise(SIGINT);
    printf("last=%d\n", csprof_last_forwarded_signal());
    fflush(stdout);
    other_restore(); // must leave the handler in place: this unit said keep catching
    raise(SIGTERM);
    printf("kept last=%d\n", csprof_last_forwarded_signal());
    return 0;
}
