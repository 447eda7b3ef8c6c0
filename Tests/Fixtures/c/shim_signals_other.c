// The second translation unit of shim_signals.c: its own copies of the shim's inline functions.
#include "csprof.h"

void other_route(void) { (void)csprof_route_signals(0, -1); }
void other_restore(void) { csprof_restore_default_signals(); }
