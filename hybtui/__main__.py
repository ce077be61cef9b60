from hybtui.cli.app import main

main()
