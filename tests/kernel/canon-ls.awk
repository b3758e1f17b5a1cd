# canon-ls.awk: turns `ls -lnR --full-time .` output into one line per entry
# (path, mode, nlink, uid:gid, size, mtime, symlink target) so two trees compare with diff.
# Directory size and nlink are left out: they describe the server's storage, not the tarball.
BEGIN { dir = "." }
/^$/ { next }
/^total [0-9]+$/ { next }
/^\.(\/.*)?:$/ { dir = substr($0, 1, length($0) - 1); next }
{
	mode = $1; nlink = $2; owner = $3 ":" $4; size = $5; mtime = $6 "T" $7 $8
	name = $0
	sub(/^[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+ /, "", name)
	if (substr(mode, 1, 1) == "d")
		print dir "/" name " " mode " - " owner " - " mtime
	else
		print dir "/" name " " mode " " nlink " " owner " " size " " mtime
}
