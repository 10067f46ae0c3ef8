from storyfeed.cli import main

main()
