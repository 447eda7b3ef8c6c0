// Only capstone's own header: no code of ours. Debian installs it as <capstone/capstone.h>.
#include <capstone/capstone.h>
