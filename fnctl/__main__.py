from fnctl.cli import main

main()
