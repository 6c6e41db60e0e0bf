module fnctl.dev/bridge

go 1.19
