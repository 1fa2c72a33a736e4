//! QEMU RAMList on RCU (work in progress).
