package updater

import "syscall"

// setDeathSignal makes the agent die with its launcher (kill -9 of the
// launcher must not leave an agent holding the state file unsupervised).
func setDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
