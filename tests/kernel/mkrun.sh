#!/usr/bin/env bash
# mkrun: writes a small synthetic Illumina run folder (stand-in for $B/genrun when that is not built).
# usage: mkrun.sh DIR NAME LANES CYCLES TILES
# Deterministic names and sizes; contents are random bytes (only their md5 matters).
set -eu
dir=$1 name=$2 lanes=${3:-2} cycles=${4:-4} tiles=${5:-2}
run=$dir/$name
mkdir -p "$run"/InterOp "$run"/Logs "$run"/Data/Intensities/BaseCalls
cat > "$run/RunInfo.xml" <<XML
<?xml version="1.0"?>
<RunInfo Version="5"><Run Id="$name" Number="432">
  <Flowcell>${name##*_}</Flowcell><Instrument>A01295</Instrument>
  <Reads><Read Number="1" NumCycles="$cycles" IsIndexedRead="N"/></Reads>
  <FlowcellLayout LaneCount="$lanes" SurfaceCount="1" SwathCount="1" TileCount="$tiles"/>
</Run></RunInfo>
XML
printf '<?xml version="1.0"?>\n<RunParameters><RunId>%s</RunId></RunParameters>\n' "$name" > "$run/RunParameters.xml"
{ echo '[Header]'; echo "Experiment Name,$name"; echo '[Data]'; echo 'Sample_ID,Sample_Name,index'
  for s in $(seq 1 24); do echo "S$s,sample_$s,ACGTACG$((s % 10))"; done; } > "$run/SampleSheet.csv"
echo "RTA 3.4.4 completed" > "$run/RTAComplete.txt"
: > "$run/CopyComplete.txt"
for m in Extraction Q Tile Error CorrectedInt Image; do
  head -c $((4096 + ${#m} * 1000)) /dev/urandom > "$run/InterOp/${m}MetricsOut.bin"
done
for l in $(seq 1 "$lanes"); do
  lane=$(printf 'L%03d' "$l")
  for c in $(seq 1 "$cycles"); do
    cdir=$run/Data/Intensities/BaseCalls/$lane/C$c.1
    mkdir -p "$cdir"
    for t in $(seq 1 "$tiles"); do
      head -c $((3000 + t * 517 + c * 31)) /dev/urandom > "$cdir/${lane}_$t.cbcl"
    done
  done
  mkdir -p "$run/Thumbnail_Images/$lane/C1.1"
  head -c 2048 /dev/urandom > "$run/Thumbnail_Images/$lane/C1.1/s_${l}_1101_green.jpg"
done
for i in 1 2 3; do seq 1 $((i * 200)) | sed "s/^/log line /" > "$run/Logs/${name}_Cycle${i}_Log.00.log"; done
