module tanukisvc

go 1.19
