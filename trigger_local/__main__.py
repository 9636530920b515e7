from trigger_local.cli.main import main

main()
