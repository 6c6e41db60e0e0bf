module fnctl.dev/gateway

go 1.19
